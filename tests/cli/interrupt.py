"""Signals sent to a running `micle` trainer as Slurm, a terminal or `kill` would send them,
for test_cli.py and test_dist_cli.py.

No wall-clock deadline: a run that never checkpoints or never exits is caught by ctest's
TIMEOUT for the whole script."""
import json
import os
import re
import signal
import subprocess
import time

STOPPED_BY_SIGNAL = 75  # the trainer's exit code after a signal stopped it (docs/cli.md)


def wait_for_checkpoint(job, out):
    """Waits until `out/latest` names a checkpoint, or the job has ended (then fails)."""
    while not os.path.exists(f"{out}/latest"):
        assert job.poll() is None, f"the run ended (exit code {job.returncode}) before its first checkpoint"
        time.sleep(0.005)


def signal_while_stopped(pid, sigs):
    """Sends each of `sigs` to `pid` while the process is stopped (SIGSTOP), then lets it go
    on: it finds them all pending at once, whatever its speed, and the run cannot have
    ended between the check for a checkpoint and the signal. Signals of one number merge
    while pending, so `sigs` are distinct."""
    os.kill(pid, signal.SIGSTOP)
    try:
        for s in sigs:
            os.kill(pid, s)
    finally:
        os.kill(pid, signal.SIGCONT)


def step_of(out, checkpoint, batches_per_epoch):
    """The learner's step count at `checkpoint` (ckpt-EEEEEE or ckpt-EEEEEE-bBBBBBB)."""
    m = re.fullmatch(r"ckpt-(\d+)(?:-b(\d+))?", checkpoint)
    assert m, f"not a checkpoint name: {checkpoint}"
    return int(m.group(1)) * batches_per_epoch + int(m.group(2) or 0)


def last_logged_step(out):
    """The step of the last step line in out/metrics.jsonl (0-based)."""
    steps = [json.loads(x)["step"] for x in open(f"{out}/metrics.jsonl") if '"step"' in x]
    return steps[-1]


def check_stopped_at_step(out, stderr, batches_per_epoch):
    """A run that a signal stopped: its `latest` checkpoint is at the step it reached (the
    last one in metrics.jsonl, all of it taken), and the message names that checkpoint.
    Returns the checkpoint's name."""
    latest = open(f"{out}/latest").read().strip()
    assert os.path.exists(f"{out}/{latest}/model.safetensors") and os.path.exists(f"{out}/{latest}/state.safetensors"), latest
    step = step_of(out, latest, batches_per_epoch)
    assert step == last_logged_step(out) + 1, f"{latest} is at step {step}, the last step logged is {last_logged_step(out)}"
    assert f"checkpointed at {out}/{latest}; run it again with --resume" in stderr, stderr[-2000:]
    return latest


def max_difference(a, b):
    """The largest absolute difference between two {name: array} maps of the same names."""
    assert a.keys() == b.keys() and len(a) > 0, (sorted(a)[:3], sorted(b)[:3])
    return max(float(abs(a[k].astype("float64") - b[k].astype("float64")).max()) if a[k].size else 0.0 for k in a)


def run_until_signal(cmd, env, out, sigs, target=None):
    """Starts `cmd`, waits for its first checkpoint, sends `sigs` (see signal_while_stopped)
    to `target(job)` (default: the job's own pid), and returns (exit code, stderr)."""
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for_checkpoint(job, out)
        signal_while_stopped(target(job) if target else job.pid, sigs)
        _, err = job.communicate()
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    return job.returncode, err

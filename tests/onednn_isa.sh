#!/bin/sh
# ctest's onednn_isa_CAP: the cases of micle_tests whose code branches on the CPU's
# instruction set (every oneDNN and bf16 case: layouts, lowered and Winograd convolutions,
# bf16 accepted or refused) run again with oneDNN capped at CAP (DNNL_MAX_CPU_ISA), where
# CAP is below the instruction set this CPU runs. One AVX-512 machine so checks the rules
# for AVX2 and for AVX-512 without bf16 or AMX; a CAP at or above this CPU's own is skipped
# (the plain run covers it).
# Usage: onednn_isa.sh CAP MICLE_TESTS
set -eu
cap=$1
tests=$2
order="AVX2 AVX2_VNNI AVX512_CORE AVX512_CORE_VNNI AVX512_CORE_BF16 AVX512_CORE_AMX"
rank() {
  i=0
  for x in $order; do
    [ "$x" = "$1" ] && { echo "$i"; return; }
    i=$((i + 1))
  done
  echo -1
}
own=$("$tests" --onednn-isa)
if [ "$(rank "$own")" -le "$(rank "$cap")" ]; then
  echo "onednn-isa: skipped: this CPU runs $own kernels, not above $cap"
  exit 0
fi
got=$(DNNL_MAX_CPU_ISA=$cap "$tests" --onednn-isa)
if [ "$got" != "$cap" ]; then
  echo "onednn-isa: DNNL_MAX_CPU_ISA=$cap gave $got kernels on this $own CPU" >&2
  exit 1
fi
echo "onednn-isa: this CPU runs $own; the ISA-dependent cases with oneDNN capped at $cap"
DNNL_MAX_CPU_ISA=$cap exec "$tests" --test-case='*onednn*,*bf16*'

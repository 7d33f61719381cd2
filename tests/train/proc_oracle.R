# The oracle of tests/train/test_statistics.cpp and tests/cli/test_cli.py: R's pROC and
# stats on a CSV of paired scores. Usage: Rscript proc_oracle.R IN.csv
# IN.csv has columns y (0/1), s1, s2 and optionally r1, r2 (1 if model 1/2 was right).
# Prints name value lines, 17 significant digits.
suppressMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
out <- function(name, v) cat(name, formatC(v, digits = 17, format = "g"), "\n")
r1 <- roc(d$y, d$s1, levels = c(0, 1), direction = "<", quiet = TRUE)
r2 <- roc(d$y, d$s2, levels = c(0, 1), direction = "<", quiet = TRUE)
for (k in 1:2) {
  r <- if (k == 1) r1 else r2
  ci <- ci.auc(r, method = "delong")
  out(paste0("auc", k), as.numeric(auc(r)))
  out(paste0("lo", k), ci[1])
  out(paste0("hi", k), ci[3])
  out(paste0("var", k), var(r, method = "delong"))
}
t <- roc.test(r1, r2, paired = TRUE, method = "delong")
out("z", t$statistic)
out("p", t$p.value)
out("diff_lo", t$conf.int[1])
out("diff_hi", t$conf.int[2])
out("cov", cov(r1, r2, method = "delong"))
if (!is.null(d$r1)) {
  m <- mcnemar.test(factor(d$r1, levels = 0:1), factor(d$r2, levels = 0:1))
  out("mcnemar", m$statistic)
  out("mcnemar_p", m$p.value)
  w <- prop.test(sum(d$r1), nrow(d), correct = FALSE)$conf.int
  out("wilson_lo", w[1])
  out("wilson_hi", w[2])
}

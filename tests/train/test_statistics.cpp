// Intervals and paired tests (train/statistics.hpp) against R: pROC's ci.auc, var,
// cov and roc.test(paired = TRUE, method = "delong"), stats' mcnemar.test and prop.test,
// run on the same numbers (tests/train/proc_oracle.R), and against hand computations.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "data/writers.hpp"
#include "micle/train/metrics.hpp"
#include "micle/train/statistics.hpp"
#include "testing.hpp"

using namespace micle;

namespace {

/// R's answers for paired scores s1, s2 of binary labels y (and right/wrong flags r1, r2).
std::map<std::string, double> proc(const std::vector<int>& y, const std::vector<float>& s1, const std::vector<float>& s2,
                                   const std::vector<bool>& r1 = {}, const std::vector<bool>& r2 = {}) {
    const std::string rscript = MICLE_TEST_RSCRIPT;
    REQUIRE_MESSAGE(!rscript.empty(), "Rscript was not found when the tests were configured: run scripts/setup "
                                      "(r-base-core, r-cran-proc), then reconfigure");
    testing::scratch s("proc");
    {
        std::ofstream csv(s.dir / "in.csv");
        csv << "y,s1,s2" << (r1.empty() ? "" : ",r1,r2") << "\n";
        csv.precision(9);  // floats round-trip
        for (std::size_t i = 0; i < y.size(); ++i) {
            csv << y[i] << ',' << s1[i] << ',' << s2[i];
            if (!r1.empty()) csv << ',' << int(r1[i]) << ',' << int(r2[i]);
            csv << '\n';
        }
    }
    const std::string cmd = rscript + " " + MICLE_TEST_SOURCE_DIR "/train/proc_oracle.R " + (s.dir / "in.csv").string() + " > " +
                            (s.dir / "out.txt").string();
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "R's pROC did not run: " << cmd);
    std::ifstream in(s.dir / "out.txt");
    std::map<std::string, double> r;
    std::string name;
    double v = 0;
    while (in >> name >> v) r[name] = v;
    REQUIRE(r.count("z"));
    return r;
}

std::vector<char> flags(const std::vector<int>& y) { return {y.begin(), y.end()}; }
std::span<const bool> bools(const std::vector<char>& v) { return {reinterpret_cast<const bool*>(v.data()), v.size()}; }

/// Labels with `positives` ones among n, and two correlated noisy scores; `round` > 0
/// rounds the scores to that many steps per unit, so that many tie.
struct binary_case {
    std::vector<int> y;
    std::vector<float> s1, s2;
    binary_case(int n, int positives, std::uint64_t seed, float round = 0) {
        rng g(seed);
        for (int i = 0; i < n; ++i) y.push_back(i < positives);
        for (int i = 0; i < n; ++i) {
            const float shared = g.normal();
            float a = 0.8f * float(y[std::size_t(i)]) + shared + 0.5f * g.normal();
            float b = 0.5f * float(y[std::size_t(i)]) + 0.7f * shared + 0.7f * g.normal();
            if (round > 0) a = std::round(a * round) / round, b = std::round(b * round) / round;
            s1.push_back(a);
            s2.push_back(b);
        }
    }
};

void check_against_proc(const binary_case& c) {
    const auto y = flags(c.y);
    const auto a = stats::delong(c.s1, bools(y)), b = stats::delong(c.s2, bools(y));
    const auto r = proc(c.y, c.s1, c.s2);
    CHECK(a.auc == doctest::Approx(r.at("auc1")).epsilon(1e-6));
    CHECK(a.auc == doctest::Approx(metrics::roc_auc(c.s1, bools(y))).epsilon(1e-12));
    CHECK(b.auc == doctest::Approx(r.at("auc2")).epsilon(1e-6));
    CHECK(a.variance() == doctest::Approx(r.at("var1")).epsilon(1e-6));
    CHECK(b.variance() == doctest::Approx(r.at("var2")).epsilon(1e-6));
    const auto ia = stats::delong_interval(a), ib = stats::delong_interval(b);
    CHECK(ia.lo == doctest::Approx(r.at("lo1")).epsilon(1e-6));
    CHECK(ia.hi == doctest::Approx(r.at("hi1")).epsilon(1e-6));
    CHECK(ib.lo == doctest::Approx(r.at("lo2")).epsilon(1e-6));
    CHECK(ib.hi == doctest::Approx(r.at("hi2")).epsilon(1e-6));
    double cov = 0;
    for (std::size_t s = 0; s < a.phi.size(); ++s) cov += a.phi[s] * b.phi[s];
    CHECK(cov == doctest::Approx(r.at("cov")).epsilon(1e-6));
    const auto t = stats::delong_paired(a, b);
    CHECK(t.statistic == doctest::Approx(r.at("z")).epsilon(1e-6));
    CHECK(t.p == doctest::Approx(r.at("p")).epsilon(1e-6));
    CHECK(t.ci.lo == doctest::Approx(r.at("diff_lo")).epsilon(1e-6));
    CHECK(t.ci.hi == doctest::Approx(r.at("diff_hi")).epsilon(1e-6));
}

}  // namespace

TEST_CASE("statistics: DeLong's AUC interval, variance and paired test equal R's pROC (balanced, tied, imbalanced)") {
    SUBCASE("balanced, continuous scores") { check_against_proc(binary_case(200, 100, 1)); }
    SUBCASE("many ties (scores rounded to tenths)") { check_against_proc(binary_case(300, 120, 2, 10.0f)); }
    SUBCASE("imbalanced: 5 positives in 500") { check_against_proc(binary_case(500, 5, 3)); }
}

TEST_CASE("statistics: a 4-class case's per-class (one-vs-rest) intervals equal pROC's, and the macro interval covers as a bootstrap's does") {
    const std::int64_t n = 400, k = 4;
    rng g(7);
    std::vector<int> labels;
    std::vector<float> probs, probs_b;
    for (std::int64_t i = 0; i < n; ++i) {
        const int y = int(g.below(k));
        labels.push_back(y);
        for (auto* p : {&probs, &probs_b}) {
            float logits[k], sum = 0;
            for (int c = 0; c < k; ++c) sum += logits[c] = std::exp((c == y ? (p == &probs ? 1.2f : 0.8f) : 0.0f) + g.normal());
            for (int c = 0; c < k; ++c) p->push_back(logits[c] / sum);
        }
    }
    const stats::scored a{probs, k, labels, {}}, b{probs_b, k, labels, {}};
    std::vector<stats::auc_components> parts;
    const auto iv = stats::analytic_intervals(a, &parts);
    const auto cmp = stats::analytic_comparison(a, b);
    const auto report = metrics::multiclass(probs, labels, k);
    for (std::int64_t c = 0; c < k; ++c) {
        CAPTURE(c);
        std::vector<int> y;
        std::vector<float> s1, s2;
        for (std::int64_t i = 0; i < n; ++i) {
            y.push_back(labels[std::size_t(i)] == c);
            s1.push_back(probs[std::size_t(i * k + c)]);
            s2.push_back(probs_b[std::size_t(i * k + c)]);
        }
        const auto r = proc(y, s1, s2);
        CHECK(parts[std::size_t(c)].auc == doctest::Approx(report.auc_per_class[std::size_t(c)]).epsilon(1e-12));
        CHECK(iv.auc_per_class[std::size_t(c)].lo == doctest::Approx(r.at("lo1")).epsilon(1e-6));
        CHECK(iv.auc_per_class[std::size_t(c)].hi == doctest::Approx(r.at("hi1")).epsilon(1e-6));
        CHECK(cmp.auc_per_class[std::size_t(c)].statistic == doctest::Approx(r.at("z")).epsilon(1e-6));
        CHECK(cmp.auc_per_class[std::size_t(c)].p == doctest::Approx(r.at("p")).epsilon(1e-6));
    }
    // The macro AUC's interval is centred on metrics' macro AUC, and its width matches the
    // spread of a bootstrap's replicates (a different estimator of the same variance).
    const auto macro = stats::mean_of(parts);
    CHECK(macro.auc == doctest::Approx(report.auc_macro).epsilon(1e-12));
    std::vector<std::int64_t> each(n);
    std::iota(each.begin(), each.end(), 0);
    const auto boot = stats::bootstrap_intervals(a, each, {4000, 11});
    const double w_delong = iv.auc_macro.hi - iv.auc_macro.lo, w_boot = boot.auc_macro.hi - boot.auc_macro.lo;
    CHECK(w_delong == doctest::Approx(w_boot).epsilon(0.12));
    CHECK(iv.auc_macro.lo < report.auc_macro);
    CHECK(iv.auc_macro.hi > report.auc_macro);
    // The macro mean of one class is that class's AUC and interval.
    const auto one = stats::mean_of(std::span<const stats::auc_components>(parts.data(), 1));
    CHECK(one.variance() == doctest::Approx(parts[0].variance()).epsilon(1e-12));
}

TEST_CASE("statistics: multi-label intervals are pROC's per label, and accuracy's Wilson interval counts the N x K decisions") {
    const std::int64_t n = 300, k = 3;
    rng g(21);
    std::vector<float> probs, targets;
    for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t c = 0; c < k; ++c) {
            const bool t = g.bernoulli(0.2f + 0.2f * float(c));
            targets.push_back(t ? 1.0f : 0.0f);
            probs.push_back(1.0f / (1.0f + std::exp(-(float(t) * (0.5f + 0.5f * float(c)) + g.normal()))));
        }
    const stats::scored sc{probs, k, {}, targets};
    REQUIRE(!sc.multiclass());
    std::vector<stats::auc_components> parts;
    const auto iv = stats::analytic_intervals(sc, &parts);
    const auto report = metrics::multilabel(probs, targets, k);
    for (std::int64_t c = 0; c < k; ++c) {
        CAPTURE(c);
        std::vector<int> y;
        std::vector<float> s1;
        for (std::int64_t i = 0; i < n; ++i) y.push_back(targets[std::size_t(i * k + c)] >= 0.5f), s1.push_back(probs[std::size_t(i * k + c)]);
        const auto r = proc(y, s1, s1);
        CHECK(parts[std::size_t(c)].auc == doctest::Approx(report.auc_per_class[std::size_t(c)]).epsilon(1e-12));
        CHECK(iv.auc_per_class[std::size_t(c)].lo == doctest::Approx(r.at("lo1")).epsilon(1e-6));
        CHECK(iv.auc_per_class[std::size_t(c)].hi == doctest::Approx(r.at("hi1")).epsilon(1e-6));
    }
    CHECK(stats::mean_of(parts).auc == doctest::Approx(report.auc_macro).epsilon(1e-12));
    const auto w = stats::wilson(report.accuracy * double(n * k), double(n * k));
    CHECK(iv.accuracy.lo == doctest::Approx(w.lo).epsilon(1e-9));
    CHECK(iv.accuracy.hi == doctest::Approx(w.hi).epsilon(1e-9));
}

TEST_CASE("statistics: Wilson's interval and McNemar's test against hand computations and R") {
    // 8 of 10: p = 0.8, z^2 = 3.8415; centre (0.8 + 0.19207) / 1.38415 = 0.71678,
    // half 1.95996 / 1.38415 * sqrt(0.016 + 0.0096037) = 0.22658
    const auto w = stats::wilson(8, 10);
    CHECK(w.lo == doctest::Approx(0.49016).epsilon(1e-4));
    CHECK(w.hi == doctest::Approx(0.94335).epsilon(1e-4));
    CHECK(stats::wilson(0, 10).lo == 0.0);
    CHECK(std::isnan(stats::wilson(0, 0).lo));
    // 12 pairs: A right and B wrong 7 times, the reverse twice: (|7 - 2| - 1)^2 / 9 = 16 / 9
    std::vector<char> a{1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1}, b{0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1};
    const auto m = stats::mcnemar(bools(a), bools(b));
    CHECK(m.a_only == 7);
    CHECK(m.b_only == 2);
    CHECK(m.statistic == doctest::Approx(16.0 / 9.0));
    CHECK(m.p == doctest::Approx(std::erfc(std::sqrt(16.0 / 18.0))));
    // and R on a larger random pair of models
    binary_case c(150, 60, 5);
    std::vector<bool> r1, r2;
    std::vector<char> v1, v2;
    for (std::size_t i = 0; i < c.y.size(); ++i) {
        r1.push_back((c.s1[i] > 0.4f) == (c.y[i] == 1)), r2.push_back((c.s2[i] > 0.25f) == (c.y[i] == 1));
        v1.push_back(r1.back()), v2.push_back(r2.back());
    }
    const auto r = proc(c.y, c.s1, c.s2, r1, r2);
    const auto mr = stats::mcnemar(bools(v1), bools(v2));
    CHECK(mr.statistic == doctest::Approx(r.at("mcnemar")).epsilon(1e-6));
    CHECK(mr.p == doctest::Approx(r.at("mcnemar_p")).epsilon(1e-6));
    const auto wr = stats::wilson(double(std::count(r1.begin(), r1.end(), true)), double(r1.size()));
    CHECK(wr.lo == doctest::Approx(r.at("wilson_lo")).epsilon(1e-6));
    CHECK(wr.hi == doctest::Approx(r.at("wilson_hi")).epsilon(1e-6));
}

TEST_CASE("statistics: the bootstrap is seeded, and resamples patients, not images") {
    // 30 patients with 8 images each; every image of a patient has the patient's score, so
    // the set holds 30 independent observations, not 240.
    const std::int64_t patients = 30, per = 8;
    rng g(3);
    std::vector<float> probs;
    std::vector<int> labels;
    std::vector<std::int64_t> patient, image;
    for (std::int64_t p = 0; p < patients; ++p) {
        const int y = int(p % 2);
        const float s = 1.0f / (1.0f + std::exp(-(float(y) + g.normal())));
        for (std::int64_t i = 0; i < per; ++i) {
            probs.push_back(1 - s), probs.push_back(s);
            labels.push_back(y);
            patient.push_back(1000 + p * 7);  // ids need not be 0..P-1
            image.push_back(std::int64_t(image.size()));
        }
    }
    const stats::scored sc{probs, 2, labels, {}};
    const auto by_patient = stats::bootstrap_intervals(sc, patient, {2000, 1});
    const auto again = stats::bootstrap_intervals(sc, patient, {2000, 1});
    const auto other_seed = stats::bootstrap_intervals(sc, patient, {2000, 2});
    const auto by_image = stats::bootstrap_intervals(sc, image, {2000, 1});
    CHECK(by_patient.clusters == std::size_t(patients));
    CHECK(by_image.clusters == std::size_t(patients * per));
    CHECK(by_patient.auc_macro.lo == again.auc_macro.lo);
    CHECK(by_patient.auc_macro.hi == again.auc_macro.hi);
    CHECK(by_patient.accuracy.lo == again.accuracy.lo);
    CHECK(by_patient.auc_macro.lo != other_seed.auc_macro.lo);
    // Resampling images treats the 8 copies as independent: its interval is about
    // sqrt(8) = 2.8 times narrower than the patients' one.
    const double wp = by_patient.auc_macro.hi - by_patient.auc_macro.lo, wi = by_image.auc_macro.hi - by_image.auc_macro.lo;
    CHECK(wp > 2.0 * wi);
    CHECK(wp < 4.0 * wi);
    // Over the 30 patients, one score each, the patient bootstrap is the ordinary one.
    std::vector<float> pp;
    std::vector<int> pl;
    std::vector<std::int64_t> pid;
    for (std::int64_t p = 0; p < patients; ++p) {
        pp.push_back(probs[std::size_t(p * per * 2)]), pp.push_back(probs[std::size_t(p * per * 2 + 1)]);
        pl.push_back(labels[std::size_t(p * per)]);
        pid.push_back(1000 + p * 7);
    }
    const auto collapsed = stats::bootstrap_intervals(stats::scored{pp, 2, pl, {}}, pid, {2000, 1});
    CHECK(collapsed.auc_macro.lo == doctest::Approx(by_patient.auc_macro.lo).epsilon(1e-12));
    CHECK(collapsed.auc_macro.hi == doctest::Approx(by_patient.auc_macro.hi).epsilon(1e-12));
    CHECK(collapsed.accuracy.lo == doctest::Approx(by_patient.accuracy.lo).epsilon(1e-12));
}

TEST_CASE("statistics: the weighted AUC equals the AUC of the repeated samples, and a paired bootstrap of a model with itself finds nothing") {
    binary_case c(60, 25, 9, 5.0f);
    const auto y = flags(c.y);
    const stats::ranked rk(c.s1);
    std::vector<double> w;
    std::vector<float> rep;
    std::vector<char> rep_y;
    rng g(4);
    for (std::size_t i = 0; i < c.y.size(); ++i) {
        w.push_back(double(g.below(3)));
        for (int k = 0; k < int(w.back()); ++k) rep.push_back(c.s1[i]), rep_y.push_back(y[i]);
    }
    CHECK(stats::weighted_auc(rk, bools(y), w) == doctest::Approx(metrics::roc_auc(rep, bools(rep_y))).epsilon(1e-12));
    std::vector<float> p;
    for (float s : c.s1) {
        const float q = 1 / (1 + std::exp(-s));
        p.push_back(1 - q), p.push_back(q);
    }
    std::vector<std::int64_t> id(c.y.size());
    std::iota(id.begin(), id.end(), 0);
    const stats::scored sc{p, 2, c.y, {}};
    const auto self = stats::bootstrap_comparison(sc, sc, id, {500, 3});
    CHECK(self.auc_macro.difference == 0.0);
    CHECK(self.auc_macro.ci.lo == 0.0);
    CHECK(self.auc_macro.ci.hi == 0.0);
    CHECK(self.auc_macro.p == 1.0);
    const auto analytic = stats::analytic_comparison(sc, sc);
    CHECK(analytic.mcnemar.p == 1.0);
    CHECK(analytic.auc_macro.p == 1.0);
}

TEST_CASE("statistics: bad input is refused with a message") {
    const std::vector<float> s{0.1f, NAN, 0.3f};
    std::vector<char> y{0, 1, 1};
    CHECK_THROWS_WITH_AS(stats::delong(s, bools(y)), doctest::Contains("not finite"), value_error);
    const std::vector<float> p{0.5f, 0.5f, 0.2f, 0.8f};
    const std::vector<int> l{0, 1, 1};
    CHECK_THROWS_AS(stats::analytic_intervals(stats::scored{p, 2, l, {}}), value_error);
    const std::vector<int> l2{0, 1};
    const std::vector<std::int64_t> ids{1};
    CHECK_THROWS_AS(stats::bootstrap_intervals(stats::scored{p, 2, l2, {}}, ids, {}), value_error);
    const std::vector<std::int64_t> ids2{1, 2};
    CHECK_THROWS_AS(stats::bootstrap_intervals(stats::scored{p, 2, l2, {}}, ids2, {0, 1}), value_error);
}

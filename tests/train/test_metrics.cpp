#include <cmath>

#include "micle/train/metrics.hpp"
#include "testing.hpp"

using namespace micle;

// Expected values computed once with scikit-learn 1.2.1 (Debian's python3-sklearn):
//   roc_auc_score(y, s); roc_auc_score(yt, P, multi_class='ovr', average='macro');
//   roc_auc_score(Y, S, average=None / 'macro'); confusion_matrix; accuracy_score.

TEST_CASE("metrics: binary AUC with ties equals scikit-learn's") {
    const std::vector<float> s{0.1f, 0.4f, 0.35f, 0.8f, 0.4f, 0.4f, 0.2f, 0.9f, 0.1f, 0.6f};
    const bool y[] = {false, false, true, true, false, true, false, true, true, false};
    CHECK(metrics::roc_auc(s, y) == doctest::Approx(0.62));  // sklearn: 0.62
    const bool all[] = {true, true};
    const std::vector<float> two{0.1f, 0.2f};
    CHECK(std::isnan(metrics::roc_auc(two, all)));
    const bool perfect[] = {false, true};
    CHECK(metrics::roc_auc(two, perfect) == 1.0);
}

TEST_CASE("metrics: multi-class accuracy, one-vs-rest macro AUC and confusion matrix equal scikit-learn's") {
    const std::vector<int> y{0, 1, 2, 2, 1, 0, 2, 1};
    const std::vector<float> p{0.5f, 0.2f, 0.3f, 0.2f, 0.5f,  0.3f,  0.1f, 0.3f, 0.6f, 0.3f, 0.4f, 0.3f,
                               0.4f, 0.4f, 0.2f, 0.3f, 0.45f, 0.25f, 0.2f, 0.2f, 0.6f, 0.5f, 0.4f, 0.1f};
    const auto r = metrics::multiclass(p, y, 3);
    CHECK(r.n == 8);
    CHECK(r.accuracy == doctest::Approx(0.5));
    CHECK(r.auc_per_class[0] == doctest::Approx(0.75));
    CHECK(r.auc_per_class[1] == doctest::Approx(0.8));
    CHECK(r.auc_per_class[2] == doctest::Approx(0.9333333333333333));
    CHECK(r.auc_macro == doctest::Approx(0.8277777777777778));
    CHECK(r.confusion == std::vector<std::vector<std::int64_t>>{{1, 1, 0}, {2, 1, 0}, {0, 1, 2}});
}

TEST_CASE("metrics: multi-label per-label and mean AUC, accuracy at 0.5") {
    const std::vector<float> t{1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0};
    const std::vector<float> s{0.9f, 0.2f, 0.6f, 0.3f, 0.1f, 0.7f, 0.6f, 0.7f, 0.4f, 0.2f, 0.4f, 0.3f, 0.5f, 0.5f, 0.5f};
    const auto r = metrics::multilabel(s, t, 3);
    CHECK(r.auc_per_class[0] == doctest::Approx(1.0));
    CHECK(r.auc_per_class[1] == doctest::Approx(0.8333333333333334));
    CHECK(r.auc_per_class[2] == doctest::Approx(1.0));
    CHECK(r.auc_macro == doctest::Approx(0.9444444444444445));
    CHECK(r.accuracy == doctest::Approx(0.8));
}

TEST_CASE("metrics: patient-level aggregation averages each patient's probabilities") {
    const std::vector<float> p{0.8f, 0.2f, 0.4f, 0.6f, 0.1f, 0.9f, 0.3f, 0.7f};
    const std::vector<std::int64_t> patients{7, 7, 3, 7};
    const std::vector<int> labels{0, 0, 1, 1};
    const auto a = metrics::aggregate_by_patient(p, 2, patients, labels, {});
    CHECK(a.patients == std::vector<std::int64_t>{7, 3});
    CHECK(a.probs[0] == doctest::Approx(0.5));  // (0.8 + 0.4 + 0.3) / 3
    CHECK(a.probs[1] == doctest::Approx(0.5));
    CHECK(a.probs[2] == doctest::Approx(0.1));
    CHECK(a.labels == std::vector<int>{0, 1});  // patient 7: two images of class 0, one of 1
    CHECK_THROWS_AS(metrics::aggregate_by_patient(p, 3, patients, labels, {}), shape_error);
}

TEST_CASE("metrics: the ROC curve steps through every distinct threshold, ties together") {
    const std::vector<float> s{0.9f, 0.8f, 0.8f, 0.3f};
    const bool y[] = {true, false, true, false};
    const auto c = metrics::roc_curve(s, y);
    const std::vector<std::pair<double, double>> want{{0, 0}, {0, 0.5}, {0.5, 1.0}, {1.0, 1.0}};
    CHECK(c == want);
    // Its trapezoidal area is the AUC.
    double area = 0;
    for (std::size_t i = 1; i < c.size(); ++i) area += (c[i].first - c[i - 1].first) * (c[i].second + c[i - 1].second) / 2;
    CHECK(area == doctest::Approx(metrics::roc_auc(s, y)));
}

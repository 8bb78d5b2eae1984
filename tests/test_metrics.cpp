// Classification metrics against hand-computed cases (scikit-learn's numbers and table, with a
// class never predicted), Keras-style metric objects, and weight regularizers.
#include <doctest/doctest.h>

#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/nn/regularizer.hpp"
#include "tapegrad/nn/train/metrics.hpp"
#include "tapegrad/tapegrad.hpp"

using namespace tg;

namespace {

// Seven samples of three classes; class 1 is never predicted.
const std::vector<std::int64_t> y_true{0, 1, 2, 2, 0, 1, 2};
const std::vector<std::int64_t> y_pred{0, 0, 2, 2, 0, 0, 0};

void check_scores(const nn::ClassScores& s, double p, double r, double f1, std::int64_t support) {
  CHECK(s.precision == doctest::Approx(p).epsilon(1e-12));
  CHECK(s.recall == doctest::Approx(r).epsilon(1e-12));
  CHECK(s.f1 == doctest::Approx(f1).epsilon(1e-12));
  CHECK(s.support == support);
}

}  // namespace

TEST_CASE("confusion_matrix counts true rows against predicted columns") {
  const Tensor m = nn::confusion_matrix(y_true, y_pred);
  CHECK(m.dtype() == int64);
  CHECK(m.array<std::int64_t>() == xt::xarray<std::int64_t>{{2, 0, 0}, {2, 0, 0}, {1, 0, 2}});
  // num_classes adds classes seen in neither.
  CHECK(nn::confusion_matrix(y_true, y_pred, 4).shape() == Shape{4, 4});
  // Scores [N, C] are reduced by argmax; one-hot labels too.
  const Tensor scores({{2.0, 1.0}, {0.1, 0.3}, {-1.0, 4.0}});
  const Tensor one_hot({{1.0, 0.0}, {1.0, 0.0}, {0.0, 1.0}});
  CHECK(nn::confusion_matrix(one_hot, scores).array<std::int64_t>() == xt::xarray<std::int64_t>{{1, 1}, {0, 1}});
  CHECK(nn::accuracy(one_hot, scores) == doctest::Approx(2.0 / 3.0));
  CHECK(nn::accuracy(y_true, y_pred) == doctest::Approx(4.0 / 7.0));
  CHECK(nn::confusion_matrix_string(m) ==
        "true\\pred 0 1 2\n"
        "0         2 0 0\n"
        "1         2 0 0\n"
        "2         1 0 2\n");
  CHECK(
      nn::confusion_matrix_string(
          nn::confusion_matrix(std::vector<std::int64_t>(12, 0), std::vector<std::int64_t>(12, 1)), {"zero", "one"}) ==
      "true\\pred  0  1\n"
      "zero       0 12\n"
      "one        0  0\n");
}

TEST_CASE("classification_report gives scikit-learn's numbers, zero_division=0") {
  const nn::ClassificationReport r = nn::classification_report(y_true, y_pred);
  REQUIRE(r.classes.size() == 3);
  CHECK(r.labels == std::vector<std::int64_t>{0, 1, 2});
  check_scores(r.classes[0], 0.4, 1.0, 4.0 / 7.0, 2);
  check_scores(r.classes[1], 0.0, 0.0, 0.0, 2);  // never predicted: precision 0, not NaN
  check_scores(r.classes[2], 1.0, 2.0 / 3.0, 0.8, 3);
  CHECK(r.accuracy == doctest::Approx(4.0 / 7.0).epsilon(1e-12));
  check_scores(r.macro_avg, 1.4 / 3.0, (1.0 + 2.0 / 3.0) / 3.0, (4.0 / 7.0 + 0.8) / 3.0, 7);
  check_scores(r.weighted_avg, 3.8 / 7.0, 4.0 / 7.0, (8.0 / 7.0 + 2.4) / 7.0, 7);
  // The table, character for character as sklearn prints it.
  CHECK(r.to_string() ==
        "              precision    recall  f1-score   support\n"
        "\n"
        "           0       0.40      1.00      0.57         2\n"
        "           1       0.00      0.00      0.00         2\n"
        "           2       1.00      0.67      0.80         3\n"
        "\n"
        "    accuracy                           0.57         7\n"
        "   macro avg       0.47      0.56      0.46         7\n"
        "weighted avg       0.54      0.57      0.51         7\n");
}

TEST_CASE("classification_report: class sets and names") {
  // By default only classes present in labels or predictions (sklearn): 3 is absent here.
  const std::vector<std::int64_t> t{0, 4, 4, 0}, p{0, 4, 0, 0};
  nn::ClassificationReport r = nn::classification_report(t, p);
  CHECK(r.labels == std::vector<std::int64_t>{0, 4});
  check_scores(r.classes[1], 1.0, 0.5, 2.0 / 3.0, 2);
  // A class predicted but absent from the labels: recall 0, support 0.
  r = nn::classification_report(std::vector<std::int64_t>{0, 0}, std::vector<std::int64_t>{0, 1});
  check_scores(r.classes[1], 0.0, 0.0, 0.0, 0);
  check_scores(r.macro_avg, 0.5, 0.25, (2.0 / 3.0) / 2.0, 2);
  // num_classes lists every class, with zeros for unseen ones (they count in the macro average).
  r = nn::classification_report(t, p, {.num_classes = 6});
  CHECK(r.classes.size() == 6);
  check_scores(r.classes[5], 0.0, 0.0, 0.0, 0);
  CHECK(r.macro_avg.precision == doctest::Approx((2.0 / 3.0 + 1.0) / 6.0));
  r = nn::classification_report(y_true, y_pred, {.target_names = {"cat", "dog", "a-longer-name"}});
  const std::string text = r.to_string(3);
  CHECK(text.find("          cat      0.400     1.000     0.571         2\n") != std::string::npos);
  CHECK(text.find("a-longer-name      1.000     0.667     0.800         3\n") != std::string::npos);
}

TEST_CASE("Keras-style metric objects accumulate over batches") {
  nn::Precision precision;
  nn::Recall recall;
  nn::F1Score f1;
  nn::Accuracy acc;
  auto feed = [&](nn::Metric& m) {
    m.reset();
    // The same data as above in two batches, predictions as logits.
    m.update(Tensor({{3.0, 1.0, 0.0}, {2.0, 1.0, 0.0}, {0.0, 1.0, 2.0}}), Tensor(xt::xarray<std::int64_t>{0, 1, 2}));
    m.update(Tensor(xt::xarray<std::int64_t>{2, 0, 0, 0}), Tensor(xt::xarray<std::int64_t>{2, 0, 1, 2}));
  };
  for (nn::Metric* m : std::initializer_list<nn::Metric*>{&precision, &recall, &f1, &acc}) feed(*m);
  CHECK(precision.name() == "precision");
  CHECK(precision.result() == doctest::Approx(1.4 / 3.0));
  CHECK(recall.result() == doctest::Approx((1.0 + 2.0 / 3.0) / 3.0));
  CHECK(f1.result() == doctest::Approx((4.0 / 7.0 + 0.8) / 3.0));
  CHECK(acc.result() == doctest::Approx(4.0 / 7.0));
  CHECK(precision.matrix().array<std::int64_t>() == xt::xarray<std::int64_t>{{2, 0, 0}, {2, 0, 0}, {1, 0, 2}});
  nn::Precision one_class({.class_id = 0});
  feed(one_class);
  CHECK(one_class.result() == doctest::Approx(0.4));
  nn::Recall weighted({.average = nn::Average::weighted});
  feed(weighted);
  CHECK(weighted.result() == doctest::Approx(4.0 / 7.0));
  nn::Precision micro({.average = nn::Average::micro});
  feed(micro);
  CHECK(micro.result() == doctest::Approx(4.0 / 7.0));
  precision.reset();
  CHECK(precision.result() == 0.0);
  // Binary probabilities [N, 1]: class 1 above one half.
  nn::Accuracy binary;
  binary.update(reshape(Tensor{0.9, 0.2, 0.6}, {3, 1}), Tensor(xt::xarray<std::int64_t>{1, 0, 0}));
  CHECK(binary.result() == doctest::Approx(2.0 / 3.0));
  CHECK(nn::make_metric("precision")->name() == "precision");
  CHECK(nn::make_metric("acc")->name() == "acc");
  CHECK(nn::make_metric("f1_score")->name() == "f1_score");
}

TEST_CASE("metrics reject predictions and labels of different lengths, naming the metric") {
  const std::vector<std::int64_t> three{0, 1, 2}, two{0, 1};
  CHECK_THROWS_WITH_AS(nn::confusion_matrix(three, two),
                       doctest::Contains("confusion_matrix: y_true has 3 samples (shape [3]) but y_pred has 2"), Error);
  CHECK_THROWS_WITH_AS(nn::classification_report(three, two), doctest::Contains("classification_report: y_true has 3"),
                       Error);
  CHECK_THROWS_WITH_AS(nn::accuracy(three, two), doctest::Contains("accuracy: y_true has 3"), Error);
  nn::Precision precision;
  CHECK_THROWS_WITH_AS(precision.update(Tensor(xt::xarray<std::int64_t>{0, 1}), Tensor(xt::xarray<std::int64_t>{0})),
                       doctest::Contains("precision: y_true has 1 samples"), Error);
  CHECK_THROWS_WITH_AS(nn::confusion_matrix(three, three, 2),
                       doctest::Contains("confusion_matrix: class 2 is out of range for num_classes = 2"), Error);
  CHECK_THROWS_WITH_AS(nn::confusion_matrix(std::vector<std::int64_t>{-1}, std::vector<std::int64_t>{0}),
                       doctest::Contains("confusion_matrix: class indices must be non-negative"), Error);
  CHECK_THROWS_WITH_AS(nn::accuracy(zeros({2, 3, 4}), zeros({2})), doctest::Contains("accuracy: y_true must be"),
                       Error);
  CHECK_THROWS_WITH_AS(nn::make_metric("auc"), doctest::Contains("unknown metric \"auc\""), Error);
}

TEST_CASE("regularizers: Keras's penalties, gradient-checked") {
  const Tensor w = Tensor(xt::xarray<double>{{0.5, -1.5}, {2.0, -0.25}});
  CHECK(nn::L2(0.1).penalty(w).item() == doctest::Approx(0.1 * (0.25 + 2.25 + 4.0 + 0.0625)));
  CHECK(nn::L1(0.1).penalty(w).item() == doctest::Approx(0.1 * 4.25));
  CHECK(nn::L1L2(0.1, 0.2).penalty(w).item() == doctest::Approx(0.1 * 4.25 + 0.2 * 6.5625));
  CHECK(nn::L2().l2() == 0.01);
  CHECK(nn::L2(0.1).penalty(w.to(float32)).dtype() == float32);
  CHECK(nn::L1L2(0.1, 0.2).repr() == "L1L2(l1=0.1, l2=0.2)");
  CHECK(nn::L2(0.001).repr() == "L2(0.001)");
  // Values away from 0, where |w| has no derivative.
  const Tensor x = Tensor(xt::xarray<double>{{0.3, -0.7, 1.2}, {-0.4, 0.9, -1.1}}).requires_grad_();
  for (const nn::Regularizer& r :
       {nn::Regularizer(nn::L1(0.3)), nn::Regularizer(nn::L2(0.2)), nn::Regularizer(nn::L1L2(0.05, 0.5))}) {
    INFO(r.repr());
    const GradcheckResult g = gradcheck([&](const TensorList& in) { return r.penalty(in[0]); }, {x});
    INFO(g.message);
    CHECK(g);
  }
  // The L2 gradient is 2λw.
  Tensor y = x.detach().requires_grad_();
  nn::L2(0.2).penalty(y).backward();
  CHECK(xt::allclose(y.grad().array<double>(), 0.4 * x.array<double>()));
}

TEST_CASE("regularizers reject negative factors") {
  CHECK_THROWS_WITH_AS(nn::L2(-0.1),
                       doctest::Contains("Regularizer: the L2 factor must be a finite number >= 0, got -0.1"), Error);
  CHECK_THROWS_WITH_AS(nn::L1(-1), doctest::Contains("the L1 factor must be"), Error);
  CHECK_THROWS_WITH_AS(nn::L1L2(0.1, std::nan("")), doctest::Contains("the L2 factor"), Error);
  CHECK_THROWS_WITH_AS(nn::L2(0.1).penalty(zeros({2}, int64)),
                       doctest::Contains("Regularizer L2(0.1): expected a float weight"), Error);
}

TEST_CASE("top_k_accuracy: the true class among the k highest scores, in_top_k's ties and non-finite rows") {
  const Tensor scores = Tensor({{0.1, 0.5, 0.4, 0.0}, {0.7, 0.1, 0.1, 0.1}, {0.2, 0.2, 0.3, 0.3}});
  const Tensor labels = Tensor(xt::xarray<std::int64_t>{2, 3, 0});
  // Sample 0: class 2 is second; sample 1: class 3 ties for second; sample 2: class 0 ties for third.
  CHECK(nn::top_k_accuracy(labels, scores, 1) == 0.0);
  CHECK(nn::top_k_accuracy(labels, scores, 2) == doctest::Approx(2.0 / 3.0));
  CHECK(nn::top_k_accuracy(labels, scores, 3) == 1.0);
  CHECK(nn::top_k_accuracy(labels, scores) == 1.0);  // k = 5 > C: every finite row
  // One-hot labels and float class indices give the same; top-1 is argmax accuracy without ties.
  CHECK(nn::top_k_accuracy(one_hot(labels, 4), scores, 2) == doctest::Approx(2.0 / 3.0));
  CHECK(nn::top_k_accuracy(Tensor({2.0, 3.0, 0.0}), scores, 2) == doctest::Approx(2.0 / 3.0));
  const Tensor distinct = Tensor({{0.1, 0.5, 0.4}, {0.7, 0.2, 0.1}});
  const Tensor two = Tensor(xt::xarray<std::int64_t>{1, 2});
  CHECK(nn::top_k_accuracy(two, distinct, 1) == nn::accuracy(two, distinct));
  // A NaN or infinite score anywhere in the row: not in the top k, as tf.math.in_top_k.
  const Tensor odd = Tensor({{0.1, NAN, 0.4}, {INFINITY, 0.2, 0.1}, {0.3, 0.2, 0.1}});
  CHECK(nn::top_k_accuracy(Tensor(xt::xarray<std::int64_t>{0, 1, 0}), odd, 3) == doctest::Approx(1.0 / 3.0));
  CHECK(nn::top_k_accuracy(zeros({0}, int64), zeros({0, 3}), 1) == 0.0);
}

TEST_CASE("TopKCategoricalAccuracy accumulates over batches and is known to make_metric by Keras's names") {
  nn::TopKCategoricalAccuracy top2(2);
  CHECK(top2.name() == "top_k_categorical_accuracy");
  CHECK(top2.k() == 2);
  top2.update(Tensor({{0.1, 0.5, 0.4}, {0.7, 0.2, 0.1}}), Tensor(xt::xarray<std::int64_t>{2, 2}));
  top2.update(Tensor({{0.3, 0.2, 0.5}}), one_hot(Tensor(xt::xarray<std::int64_t>{0}), 3));
  CHECK(top2.result() == doctest::Approx(2.0 / 3.0));
  CHECK(top2.state() == std::vector<double>{2.0, 3.0});
  top2.reset();
  CHECK(top2.result() == 0.0);
  for (const char* name : {"top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy"}) {
    const auto m = nn::make_metric(name);
    CHECK(m->name() == name);
    const auto* top = dynamic_cast<const nn::TopKCategoricalAccuracy*>(m.get());
    REQUIRE(top != nullptr);
    CHECK(top->k() == 5);
  }
}

TEST_CASE("top-k accuracy rejects bad k, scores and labels, naming the metric and shapes") {
  const Tensor scores = zeros({2, 3});
  const Tensor labels = Tensor(xt::xarray<std::int64_t>{0, 1});
  CHECK_THROWS_WITH_AS(nn::top_k_accuracy(labels, scores, 0),
                       doctest::Contains("top_k_accuracy: k must be >= 1, got 0"), Error);
  CHECK_THROWS_WITH_AS(nn::TopKCategoricalAccuracy(-1),
                       doctest::Contains("top_k_categorical_accuracy: k must be >= 1, got -1"), Error);
  CHECK_THROWS_WITH_AS(nn::top_k_accuracy(labels, Tensor(xt::xarray<std::int64_t>{0, 1}), 1),
                       doctest::Contains("top_k_accuracy: y_pred must be float scores [N, C], got int64 [2]"), Error);
  CHECK_THROWS_WITH_AS(nn::top_k_accuracy(labels, zeros({3}), 1),
                       doctest::Contains("top_k_accuracy: y_pred must be float scores [N, C], got float32 [3]"), Error);
  CHECK_THROWS_WITH_AS(
      nn::top_k_accuracy(Tensor(xt::xarray<std::int64_t>{0, 1, 2}), scores, 1),
      doctest::Contains("top_k_accuracy: y_true has 3 samples (shape [3]) but y_pred has 2 (shape [2, 3])"), Error);
  CHECK_THROWS_WITH_AS(nn::top_k_accuracy(Tensor(xt::xarray<std::int64_t>{0, 3}), scores, 1),
                       doctest::Contains("top_k_accuracy: class 3 is out of range for y_pred [2, 3]"), Error);
  nn::TopKCategoricalAccuracy sparse(5, "sparse_top_k_categorical_accuracy");
  CHECK_THROWS_WITH_AS(sparse.update(scores, Tensor(xt::xarray<std::int64_t>{0, -1})),
                       doctest::Contains("sparse_top_k_categorical_accuracy: class -1 is out of range"), Error);
}

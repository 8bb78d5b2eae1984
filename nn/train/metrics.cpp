#include "tapegrad/nn/train/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/autograd/grad_mode.hpp"
#include "tapegrad/autograd/xarray.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg::nn {
namespace {

std::vector<std::int64_t> to_vector(const Tensor& classes) {
  const std::int64_t* p = classes.data<std::int64_t>();
  return {p, p + classes.numel()};
}

Tensor from_vector(const std::vector<std::int64_t>& v) {
  xt::xarray<std::int64_t> a = xt::xarray<std::int64_t>::from_shape({v.size()});
  std::copy(v.begin(), v.end(), a.data());
  return Tensor(std::move(a));
}

// Index vectors of both sides, checked for equal length and non-negative classes.
struct Pairs {
  std::vector<std::int64_t> y_true, y_pred;
};

Pairs pairs(const Tensor& y_true, const Tensor& y_pred, std::string_view metric) {
  NoGradGuard no_grad;
  Pairs p{to_vector(true_classes(y_true, metric)), to_vector(predicted_classes(y_pred, metric))};
  TG_CHECK(p.y_true.size() == p.y_pred.size(),
           "{}: y_true has {} samples (shape {}) but y_pred has {} (shape {}); they must be the same length", metric,
           p.y_true.size(), shape_str(y_true.shape()), p.y_pred.size(), shape_str(y_pred.shape()));
  for (const auto* v : {&p.y_true, &p.y_pred})
    for (std::int64_t c : *v)
      TG_CHECK(c >= 0, "{}: class indices must be non-negative, got {} in {}", metric, c,
               v == &p.y_true ? "y_true" : "y_pred");
  return p;
}

Pairs pairs(const std::vector<std::int64_t>& y_true, const std::vector<std::int64_t>& y_pred, std::string_view metric) {
  return pairs(from_vector(y_true), from_vector(y_pred), metric);
}

// {samples whose true class is in y_pred's top k (in_top_k's rule), samples}.
std::pair<std::int64_t, std::int64_t> top_k_counts(const Tensor& y_true, const Tensor& y_pred, std::int64_t k,
                                                   std::string_view metric) {
  TG_CHECK(k >= 1, "{}: k must be >= 1, got {}", metric, k);
  const Shape s = y_pred.defined() ? y_pred.shape() : Shape{};
  TG_CHECK(y_pred.defined() && is_floating(y_pred.dtype()) && s.size() == 2,
           "{}: y_pred must be float scores [N, C], got {} {}", metric, y_pred.defined() ? y_pred.dtype() : int64,
           shape_str(s));
  NoGradGuard no_grad;
  const std::vector<std::int64_t> labels = to_vector(true_classes(y_true, metric));
  TG_CHECK(labels.size() == s[0], "{}: y_true has {} samples (shape {}) but y_pred has {} (shape {})", metric,
           labels.size(), shape_str(y_true.shape()), s[0], shape_str(s));
  const Tensor scores = y_pred.detach().to(float64);
  const std::size_t c = s[1];
  std::int64_t in = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::int64_t label = labels[i];
    TG_CHECK(label >= 0 && label < static_cast<std::int64_t>(c), "{}: class {} is out of range for y_pred {}", metric,
             label, shape_str(s));
    const double* row = scores.data<double>() + i * c;
    const double target = row[label];
    std::int64_t higher = 0;
    bool finite = true;
    for (std::size_t j = 0; j < c; ++j) {
      finite = finite && std::isfinite(row[j]);
      higher += row[j] > target;
    }
    in += finite && higher < k;
  }
  return {in, static_cast<std::int64_t>(labels.size())};
}

std::size_t class_count(const Pairs& p, std::size_t num_classes, std::string_view metric) {
  std::int64_t largest = -1;
  for (const auto* v : {&p.y_true, &p.y_pred})
    for (std::int64_t c : *v) largest = std::max(largest, c);
  if (num_classes == 0) return static_cast<std::size_t>(largest + 1);
  TG_CHECK(largest < static_cast<std::int64_t>(num_classes), "{}: class {} is out of range for num_classes = {}",
           metric, largest, num_classes);
  return num_classes;
}

double ratio(std::int64_t num, std::int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

// One class's scores from a k × k confusion matrix (rows true, columns predicted).
ClassScores class_scores(const std::vector<std::int64_t>& m, std::size_t k, std::size_t c) {
  std::int64_t tp = m[c * k + c], predicted = 0, support = 0;
  for (std::size_t j = 0; j < k; ++j) {
    predicted += m[j * k + c];
    support += m[c * k + j];
  }
  const std::int64_t fp = predicted - tp, fn = support - tp;
  return {.precision = ratio(tp, predicted),
          .recall = ratio(tp, support),
          .f1 = ratio(2 * tp, 2 * tp + fp + fn),
          .support = support};
}

ClassificationReport report_from(const std::vector<std::int64_t>& m, std::size_t k,
                                 const std::vector<std::int64_t>& labels, std::vector<std::string> names) {
  ClassificationReport r;
  r.labels = labels;
  std::int64_t correct = 0, total = 0;
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = 0; j < k; ++j) {
      total += m[i * k + j];
      if (i == j) correct += m[i * k + j];
    }
  r.accuracy = ratio(correct, total);
  for (std::int64_t label : labels) {
    const ClassScores s = class_scores(m, k, static_cast<std::size_t>(label));
    r.classes.push_back(s);
    const double n = static_cast<double>(labels.size()), w = static_cast<double>(s.support);
    r.macro_avg.precision += s.precision / n;
    r.macro_avg.recall += s.recall / n;
    r.macro_avg.f1 += s.f1 / n;
    r.weighted_avg.precision += s.precision * w;
    r.weighted_avg.recall += s.recall * w;
    r.weighted_avg.f1 += s.f1 * w;
    r.macro_avg.support += s.support;
  }
  r.weighted_avg.support = r.macro_avg.support;
  if (r.weighted_avg.support > 0) {
    const double w = static_cast<double>(r.weighted_avg.support);
    r.weighted_avg.precision /= w;
    r.weighted_avg.recall /= w;
    r.weighted_avg.f1 /= w;
  }
  if (names.empty())
    for (std::int64_t label : labels) names.push_back(std::to_string(label));
  r.names = std::move(names);
  return r;
}

std::vector<std::int64_t> counts_of(const Pairs& p, std::size_t k) {
  std::vector<std::int64_t> m(k * k, 0);
  for (std::size_t i = 0; i < p.y_true.size(); ++i)
    ++m[static_cast<std::size_t>(p.y_true[i]) * k + static_cast<std::size_t>(p.y_pred[i])];
  return m;
}

Tensor matrix_tensor(const std::vector<std::int64_t>& m, std::size_t k) {
  xt::xarray<std::int64_t> a = xt::xarray<std::int64_t>::from_shape({k, k});
  std::copy(m.begin(), m.end(), a.data());
  return Tensor(std::move(a));
}

ClassificationReport report(const Pairs& p, const ReportOptions& options) {
  const std::size_t k = class_count(p, options.num_classes, "classification_report");
  std::vector<std::int64_t> labels;
  if (options.num_classes > 0) {
    for (std::size_t c = 0; c < k; ++c) labels.push_back(static_cast<std::int64_t>(c));
  } else {
    labels = p.y_true;
    labels.insert(labels.end(), p.y_pred.begin(), p.y_pred.end());
    std::sort(labels.begin(), labels.end());
    labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  }
  TG_CHECK(options.target_names.empty() || options.target_names.size() == labels.size(),
           "classification_report: {} target_names for {} classes", options.target_names.size(), labels.size());
  return report_from(counts_of(p, k), k, labels, options.target_names);
}

}  // namespace

Tensor predicted_classes(const Tensor& y_pred, std::string_view metric) {
  TG_CHECK(y_pred.defined(), "{}: y_pred is undefined", metric);
  const Shape s = y_pred.shape();
  TG_CHECK(s.size() == 1 || s.size() == 2, "{}: y_pred must be class indices [N] or scores [N, C], got shape {}",
           metric, shape_str(s));
  NoGradGuard no_grad;
  const Tensor p = y_pred.detach();
  if (p.dtype() == int64) {
    TG_CHECK(s.size() == 1 || s[1] == 1, "{}: int64 y_pred must be class indices [N] or [N, 1], got shape {}", metric,
             shape_str(s));
    return reshape(p, {static_cast<std::int64_t>(s[0])});
  }
  if (s.size() == 2 && s[1] > 1) return argmax(p, 1);
  // Binary probabilities: class 1 above one half.
  const Tensor f = p.to(float64);
  xt::xarray<std::int64_t> out = xt::xarray<std::int64_t>::from_shape({s[0]});
  for (std::size_t i = 0; i < s[0]; ++i) out(i) = f.data<double>()[i] > 0.5 ? 1 : 0;
  return Tensor(std::move(out));
}

Tensor true_classes(const Tensor& y_true, std::string_view metric) {
  TG_CHECK(y_true.defined(), "{}: y_true is undefined", metric);
  const Shape s = y_true.shape();
  TG_CHECK(s.size() == 1 || s.size() == 2, "{}: y_true must be class indices [N] or one-hot rows [N, C], got shape {}",
           metric, shape_str(s));
  NoGradGuard no_grad;
  const Tensor t = y_true.detach();
  if (s.size() == 2 && s[1] > 1) {
    TG_CHECK(t.dtype() != int64, "{}: int64 y_true must be class indices [N] or [N, 1], got shape {}", metric,
             shape_str(s));
    return argmax(t, 1);
  }
  if (t.dtype() == int64) return reshape(t, {static_cast<std::int64_t>(s[0])});
  // Float labels holding class indices (as Keras's sparse labels often are).
  xt::xarray<std::int64_t> out = xt::xarray<std::int64_t>::from_shape({s[0]});
  const Tensor f = t.to(float64);
  for (std::size_t i = 0; i < s[0]; ++i) {
    const double v = f.data<double>()[i];
    TG_CHECK(v == std::floor(v), "{}: float y_true [N] must hold class indices, got {} at {}", metric, v, i);
    out(i) = static_cast<std::int64_t>(v);
  }
  return Tensor(std::move(out));
}

Tensor confusion_matrix(const Tensor& y_true, const Tensor& y_pred, std::size_t num_classes) {
  const Pairs p = pairs(y_true, y_pred, "confusion_matrix");
  const std::size_t k = class_count(p, num_classes, "confusion_matrix");
  return matrix_tensor(counts_of(p, k), k);
}

Tensor confusion_matrix(const std::vector<std::int64_t>& y_true, const std::vector<std::int64_t>& y_pred,
                        std::size_t num_classes) {
  return confusion_matrix(from_vector(y_true), from_vector(y_pred), num_classes);
}

std::string confusion_matrix_string(const Tensor& matrix, const std::vector<std::string>& names) {
  const Shape s = matrix.shape();
  TG_CHECK(matrix.dtype() == int64 && s.size() == 2 && s[0] == s[1],
           "confusion_matrix_string: expected an int64 [K, K] matrix, got {} {}", matrix.dtype(), shape_str(s));
  const std::size_t k = s[0];
  TG_CHECK(names.empty() || names.size() == k, "confusion_matrix_string: {} names for {} classes", names.size(), k);
  const std::int64_t* m = matrix.data<std::int64_t>();
  std::size_t cell = std::to_string(k > 0 ? k - 1 : 0).size();
  for (std::size_t i = 0; i < k * k; ++i) cell = std::max(cell, std::to_string(m[i]).size());
  std::size_t label = std::string_view("true\\pred").size();
  for (std::size_t i = 0; i < k; ++i)
    label = std::max(label, names.empty() ? std::to_string(i).size() : names[i].size());
  std::string out = fmt::format("{:<{}}", "true\\pred", label);
  for (std::size_t j = 0; j < k; ++j) out += fmt::format(" {:>{}}", j, cell);
  out += "\n";
  for (std::size_t i = 0; i < k; ++i) {
    out += fmt::format("{:<{}}", names.empty() ? std::to_string(i) : names[i], label);
    for (std::size_t j = 0; j < k; ++j) out += fmt::format(" {:>{}}", m[i * k + j], cell);
    out += "\n";
  }
  return out;
}

double accuracy(const Tensor& y_true, const Tensor& y_pred) {
  const Pairs p = pairs(y_true, y_pred, "accuracy");
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < p.y_true.size(); ++i) correct += p.y_true[i] == p.y_pred[i];
  return ratio(correct, static_cast<std::int64_t>(p.y_true.size()));
}

double accuracy(const std::vector<std::int64_t>& y_true, const std::vector<std::int64_t>& y_pred) {
  return accuracy(from_vector(y_true), from_vector(y_pred));
}

double top_k_accuracy(const Tensor& y_true, const Tensor& y_pred, std::int64_t k) {
  const auto [in, total] = top_k_counts(y_true, y_pred, k, "top_k_accuracy");
  return ratio(in, total);
}

ClassificationReport classification_report(const Tensor& y_true, const Tensor& y_pred, ReportOptions options) {
  return report(pairs(y_true, y_pred, "classification_report"), options);
}

ClassificationReport classification_report(const std::vector<std::int64_t>& y_true,
                                           const std::vector<std::int64_t>& y_pred, ReportOptions options) {
  return report(pairs(y_true, y_pred, "classification_report"), options);
}

std::string ClassificationReport::to_string(int digits) const {
  // scikit-learn's layout: names right-aligned to the widest of them and "weighted avg",
  // then columns 9 wide separated by one space.
  std::size_t width = std::string_view("weighted avg").size();
  for (const std::string& n : names) width = std::max(width, n.size());
  width = std::max(width, static_cast<std::size_t>(digits));
  const auto d = static_cast<std::size_t>(std::max(digits, 0));
  auto row = [&](std::string_view name, const ClassScores& s) {
    return fmt::format("{:>{}} {:>10.{}f} {:>9.{}f} {:>9.{}f} {:>9}\n", name, width, s.precision, d, s.recall, d, s.f1,
                       d, s.support);
  };
  std::string out =
      fmt::format("{:>{}}  {:>9} {:>9} {:>9} {:>9}\n\n", "", width, "precision", "recall", "f1-score", "support");
  for (std::size_t i = 0; i < classes.size(); ++i) out += row(names[i], classes[i]);
  out += "\n";
  out +=
      fmt::format("{:>{}} {:>10} {:>9} {:>9.{}f} {:>9}\n", "accuracy", width, "", "", accuracy, d, macro_avg.support);
  out += row("macro avg", macro_avg);
  out += row("weighted avg", weighted_avg);
  return out;
}

void Accuracy::update(const Tensor& y_pred, const Tensor& y_true) {
  const Pairs p = pairs(y_true, y_pred, name_);
  for (std::size_t i = 0; i < p.y_true.size(); ++i) correct_ += p.y_true[i] == p.y_pred[i];
  total_ += static_cast<std::int64_t>(p.y_true.size());
}

TopKCategoricalAccuracy::TopKCategoricalAccuracy(std::int64_t k, std::string name) : Accuracy(std::move(name)), k_(k) {
  TG_CHECK(k >= 1, "{}: k must be >= 1, got {}", name_, k);
}

void TopKCategoricalAccuracy::update(const Tensor& y_pred, const Tensor& y_true) {
  const auto [in, total] = top_k_counts(y_true, y_pred, k_, name_);
  correct_ += in;
  total_ += total;
}

ConfusionMatrixMetric::ConfusionMatrixMetric(MetricOptions options, std::string default_name)
    : options_(std::move(options)), name_(options_.name.empty() ? std::move(default_name) : options_.name) {
  TG_CHECK(options_.class_id >= -1, "{}: class_id must be a class index or -1 (all classes), got {}", name_,
           options_.class_id);
  TG_CHECK(options_.num_classes == 0 || options_.class_id < static_cast<std::int64_t>(options_.num_classes),
           "{}: class_id {} is out of range for num_classes = {}", name_, options_.class_id, options_.num_classes);
  reset();
}

std::vector<double> Metric::state() const {
  throw Error(
      fmt::format("metric '{}' cannot be combined across ranks: implement Metric::state and merge_state", name()));
}

void Metric::merge_state(std::span<const double>) {
  throw Error(
      fmt::format("metric '{}' cannot be combined across ranks: implement Metric::state and merge_state", name()));
}

std::vector<double> Accuracy::state() const { return {static_cast<double>(correct_), static_cast<double>(total_)}; }

void Accuracy::merge_state(std::span<const double> state) {
  TG_CHECK(state.size() == 2, "{}: merge_state: expected 2 numbers (correct, total), got {}", name_, state.size());
  correct_ += static_cast<std::int64_t>(state[0]);
  total_ += static_cast<std::int64_t>(state[1]);
}

void ConfusionMatrixMetric::reset() {
  k_ = options_.num_classes;
  counts_.assign(k_ * k_, 0);
  seen_.assign(k_, options_.num_classes > 0);
}

void ConfusionMatrixMetric::grow(std::size_t k) {
  if (k <= k_) return;
  // Keeps the counts so far.
  std::vector<std::int64_t> grown(k * k, 0);
  for (std::size_t i = 0; i < k_; ++i)
    std::copy_n(counts_.begin() + static_cast<std::ptrdiff_t>(i * k_), k_,
                grown.begin() + static_cast<std::ptrdiff_t>(i * k));
  counts_ = std::move(grown);
  seen_.resize(k, false);
  k_ = k;
}

void ConfusionMatrixMetric::update(const Tensor& y_pred, const Tensor& y_true) {
  const Pairs p = pairs(y_true, y_pred, name_);
  const std::size_t k =
      options_.num_classes > 0 ? class_count(p, options_.num_classes, name_) : std::max(k_, class_count(p, 0, name_));
  grow(k);
  for (std::size_t i = 0; i < p.y_true.size(); ++i) {
    const auto t = static_cast<std::size_t>(p.y_true[i]), q = static_cast<std::size_t>(p.y_pred[i]);
    ++counts_[t * k_ + q];
    seen_[t] = seen_[q] = true;
  }
}

// State: k, then the k×k counts, then k "seen" flags.
std::vector<double> ConfusionMatrixMetric::state() const {
  std::vector<double> s = {static_cast<double>(k_)};
  for (const std::int64_t c : counts_) s.push_back(static_cast<double>(c));
  for (const bool b : seen_) s.push_back(b ? 1.0 : 0.0);
  return s;
}

void ConfusionMatrixMetric::merge_state(std::span<const double> state) {
  TG_CHECK(!state.empty() && state[0] >= 0, "{}: merge_state: not a confusion-matrix state", name_);
  const auto k = static_cast<std::size_t>(state[0]);
  TG_CHECK(state.size() == 1 + k * k + k, "{}: merge_state: {} numbers for {} classes", name_, state.size(), k);
  grow(k);
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = 0; j < k; ++j) counts_[i * k_ + j] += static_cast<std::int64_t>(state[1 + i * k + j]);
  for (std::size_t i = 0; i < k; ++i)
    if (state[1 + k * k + i] != 0) seen_[i] = true;
}

Tensor ConfusionMatrixMetric::matrix() const { return matrix_tensor(counts_, k_); }

ClassificationReport ConfusionMatrixMetric::report() const {
  std::vector<std::int64_t> labels;
  for (std::size_t c = 0; c < k_; ++c)
    if (seen_[c]) labels.push_back(static_cast<std::int64_t>(c));
  return report_from(counts_, k_, labels, {});
}

ClassScores ConfusionMatrixMetric::scores() const {
  if (options_.class_id >= 0) {
    const auto c = static_cast<std::size_t>(options_.class_id);
    return c < k_ ? class_scores(counts_, k_, c) : ClassScores{};
  }
  const ClassificationReport r = report();
  switch (options_.average) {
    case Average::macro:
      return r.macro_avg;
    case Average::weighted:
      return r.weighted_avg;
    case Average::micro:
      break;
  }
  // Single-label micro averages: every miss is one fp and one fn, so all three equal accuracy.
  return {.precision = r.accuracy, .recall = r.accuracy, .f1 = r.accuracy, .support = r.macro_avg.support};
}

std::shared_ptr<Metric> make_metric(std::string_view name) {
  if (name == "accuracy" || name == "acc") return std::make_shared<Accuracy>(std::string(name));
  if (name == "precision") return std::make_shared<Precision>();
  if (name == "recall") return std::make_shared<Recall>();
  if (name == "f1_score" || name == "f1") return std::make_shared<F1Score>(MetricOptions{.name = std::string(name)});
  if (name == "top_k_categorical_accuracy" || name == "sparse_top_k_categorical_accuracy")
    return std::make_shared<TopKCategoricalAccuracy>(5, std::string(name));
  detail::fail(
      "metrics: unknown metric \"{}\"; known: accuracy (acc), precision, recall, f1_score (f1), "
      "top_k_categorical_accuracy, sparse_top_k_categorical_accuracy",
      name);
}

}  // namespace tg::nn

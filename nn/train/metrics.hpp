#pragma once
// Classification metrics: confusion matrix, accuracy and scikit-learn's classification report
// (per-class precision, recall, F1 and support with macro and weighted averages), usable on
// their own on predictions, and as Keras-style stateful Metric objects for Model::compile.
//
// Predictions may be class indices (int64 [N]) or scores (float [N, C]: probabilities or logits,
// reduced by argmax). Labels are class indices (int64 [N] or [N, 1]) or one-hot rows (float
// [N, C]). Undefined ratios follow scikit-learn's zero_division=0: a class never predicted has
// precision 0, a class with no true sample has recall 0, and F1 = 2tp / (2tp + fp + fn) is 0
// when that denominator is.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tapegrad/autograd/tensor.hpp"

namespace tg::nn {

/// Class indices [N] (int64) from predictions: int64 [N] or [N, 1] as they are, float [N, C]
/// with C > 1 by argmax, float [N] or [N, 1] as binary probabilities (class 1 when > 0.5).
/// `metric` names the caller in errors.
Tensor predicted_classes(const Tensor& y_pred, std::string_view metric = "metrics");
/// Class indices [N] (int64) from labels: int64 [N] or [N, 1], or one-hot float [N, C] by argmax.
Tensor true_classes(const Tensor& y_true, std::string_view metric = "metrics");

/// y_true [N], y_pred [N] or [N, C] → int64 [K, K]: entry (i, j) counts samples of true class i
/// predicted as j. K = num_classes, or the largest class seen + 1 when num_classes is 0.
Tensor confusion_matrix(const Tensor& y_true, const Tensor& y_pred, std::size_t num_classes = 0);
/// The same on index vectors.
Tensor confusion_matrix(const std::vector<std::int64_t>& y_true, const std::vector<std::int64_t>& y_pred,
                        std::size_t num_classes = 0);

/// The matrix as a text table: a header of predicted classes, then one row per true class
/// (named by `names` when given, else by index), counts right-aligned.
std::string confusion_matrix_string(const Tensor& matrix, const std::vector<std::string>& names = {});

/// Fraction of samples whose predicted class is the true one (0 for no samples).
double accuracy(const Tensor& y_true, const Tensor& y_pred);
/// The same on index vectors.
double accuracy(const std::vector<std::int64_t>& y_true, const std::vector<std::int64_t>& y_pred);

/// Fraction of samples whose true class is among the k highest scores of y_pred (float [N, C]),
/// with Keras's in_top_k rule: the true class counts when fewer than k classes score strictly
/// higher (ties at the boundary are in), and never when a score of its row is NaN or ±inf.
/// y_true: class indices [N] or [N, 1], or one-hot rows [N, C]. 0 for no samples.
double top_k_accuracy(const Tensor& y_true, const Tensor& y_pred, std::int64_t k = 5);

/// Precision, recall, F1 and support of one class (or an average over classes).
struct ClassScores {
  /// tp / (tp + fp); 0 when nothing was predicted as the class.
  double precision = 0.0;
  /// tp / (tp + fn); 0 when the class has no true sample.
  double recall = 0.0;
  /// 2tp / (2tp + fp + fn); 0 when that denominator is.
  double f1 = 0.0;
  std::int64_t support = 0;  ///< true samples of the class (the total for averages)
};

/// scikit-learn's classification_report as numbers, and its text table.
struct ClassificationReport {
  std::vector<std::int64_t> labels;  ///< the class of each row of `classes`
  std::vector<std::string> names;    ///< row names in the table (the labels, or target_names)
  std::vector<ClassScores> classes;  ///< one per label
  double accuracy = 0.0;             ///< over all samples
  ClassScores macro_avg;             ///< unweighted mean over the labels
  ClassScores weighted_avg;          ///< mean weighted by support
  /// The table as scikit-learn prints it (digits after the point, default 2).
  std::string to_string(int digits = 2) const;
};

/// Options of classification_report.
struct ReportOptions {
  /// Classes 0..num_classes-1 (classes without samples or predictions get zeros, as sklearn's
  /// labels=range(num_classes)); 0: the classes present in y_true or y_pred (sklearn's default).
  std::size_t num_classes = 0;
  std::vector<std::string> target_names = {};  ///< row names, one per class; default the indices
};

/// y_true [N], y_pred [N] or [N, C] → per-class precision, recall, F1, support and averages.
ClassificationReport classification_report(const Tensor& y_true, const Tensor& y_pred, ReportOptions options = {});
/// The same on index vectors.
ClassificationReport classification_report(const std::vector<std::int64_t>& y_true,
                                           const std::vector<std::int64_t>& y_pred, ReportOptions options = {});

/// A stateful metric, Keras style: update() with each batch, result() over all since reset().
/// Model calls reset() at the start of each epoch (and of evaluate), update(y_pred, y_true)
/// after each batch's forward (outside the graph: pass detached tensors or run under no-grad),
/// and logs result() under name() (and "val_" + name() on validation data).
class Metric {
 public:
  virtual ~Metric() = default;
  /// The key in History and in the progress line ("accuracy", "precision").
  virtual std::string name() const = 0;
  /// Forgets everything accumulated.
  virtual void reset() = 0;
  /// Adds a batch: y_pred [N] or [N, C], y_true [N] (see predicted_classes / true_classes).
  virtual void update(const Tensor& y_pred, const Tensor& y_true) = 0;
  /// The value over every batch since reset().
  virtual double result() const = 0;
  /// The accumulated counts as numbers, and adding another instance's counts to these: how
  /// distributed fit and evaluate combine the ranks' metrics. The defaults throw; a metric of
  /// one's own used with Model::distribute implements both.
  virtual std::vector<double> state() const;
  /// Adds another instance's state() to this one's counts.
  virtual void merge_state(std::span<const double> state);
};

/// How Precision, Recall and F1Score combine the classes.
enum class Average {
  macro,     ///< unweighted mean over classes seen so far in labels or predictions (sklearn's macro)
  weighted,  ///< mean weighted by support
  micro,     ///< from the summed counts (equals accuracy for single-label classification)
};

/// Options of the confusion-matrix metrics.
struct MetricOptions {
  /// How the classes combine when class_id is -1.
  Average average = Average::macro;
  /// Score only this class (its one-vs-rest precision/recall/F1) instead of averaging; -1: all.
  std::int64_t class_id = -1;
  std::size_t num_classes = 0;  ///< classes 0..num_classes-1; 0: grows with the classes seen
  std::string name = {};        ///< override of the logged name
};

/// Fraction of correct predictions ("accuracy").
class Accuracy : public Metric {
 public:
  /// Logged under `name` (compile's "acc" gives "acc").
  explicit Accuracy(std::string name = "accuracy") : name_(std::move(name)) {}
  /// The name given.
  std::string name() const override { return name_; }
  /// Zeroes the counts.
  void reset() override { correct_ = total_ = 0; }
  /// Counts the batch's samples and its correct predictions.
  void update(const Tensor& y_pred, const Tensor& y_true) override;
  /// Correct predictions / samples (0 before any sample).
  double result() const override { return total_ ? static_cast<double>(correct_) / static_cast<double>(total_) : 0.0; }
  /// {correct, total}.
  std::vector<double> state() const override;
  /// Adds another instance's {correct, total}.
  void merge_state(std::span<const double> state) override;

 protected:
  std::string name_;
  std::int64_t correct_ = 0;
  std::int64_t total_ = 0;
};

/// Top-k accuracy (see top_k_accuracy), Keras's "top_k_categorical_accuracy" (one-hot labels)
/// and "sparse_top_k_categorical_accuracy" (class indices); either accepts both label forms.
class TopKCategoricalAccuracy : public Accuracy {
 public:
  /// k >= 1 (Keras's default 5), logged under `name`.
  explicit TopKCategoricalAccuracy(std::int64_t k = 5, std::string name = "top_k_categorical_accuracy");
  /// Counts the batch's samples and those whose true class is in the top k.
  void update(const Tensor& y_pred, const Tensor& y_true) override;
  /// The k given.
  std::int64_t k() const { return k_; }

 private:
  std::int64_t k_;
};

/// Accumulates a confusion matrix over batches; precision, recall and F1 derive from it.
class ConfusionMatrixMetric : public Metric {
 public:
  /// Logged as options.name, or `default_name` when that is empty; throws for a class_id out of range.
  explicit ConfusionMatrixMetric(MetricOptions options, std::string default_name);
  /// The logged name.
  std::string name() const override { return name_; }
  /// Empties the matrix.
  void reset() override;
  /// Adds the batch's (true, predicted) pairs to the matrix (grown for new classes when num_classes is 0).
  void update(const Tensor& y_pred, const Tensor& y_true) override;
  /// The matrix accumulated so far, int64 [K, K] (rows true, columns predicted).
  Tensor matrix() const;
  /// The classification report of everything accumulated so far.
  ClassificationReport report() const;
  /// {K, the K×K counts row-major, K flags of the classes seen}.
  std::vector<double> state() const override;
  /// Adds another instance's state(), widening the matrix to its classes.
  void merge_state(std::span<const double> state) override;

 protected:
  /// The chosen class's scores, or the chosen average.
  ClassScores scores() const;

 private:
  /// Widens the matrix to k classes (no-op when it has as many).
  void grow(std::size_t k);
  MetricOptions options_;
  std::string name_;
  std::size_t k_ = 0;
  std::vector<std::int64_t> counts_;  // k_ × k_, row-major
  std::vector<bool> seen_;            // classes present in labels or predictions
};

/// Precision (macro by default), Keras's "precision".
class Precision : public ConfusionMatrixMetric {
 public:
  /// average, class_id, num_classes and the name (default "precision").
  explicit Precision(MetricOptions options = {}) : ConfusionMatrixMetric(std::move(options), "precision") {}
  /// The precision of class_id, or the chosen average.
  double result() const override { return scores().precision; }
};

/// Recall (macro by default), Keras's "recall".
class Recall : public ConfusionMatrixMetric {
 public:
  /// average, class_id, num_classes and the name (default "recall").
  explicit Recall(MetricOptions options = {}) : ConfusionMatrixMetric(std::move(options), "recall") {}
  /// The recall of class_id, or the chosen average.
  double result() const override { return scores().recall; }
};

/// F1 score (macro by default), Keras's "f1_score".
class F1Score : public ConfusionMatrixMetric {
 public:
  /// average, class_id, num_classes and the name (default "f1_score").
  explicit F1Score(MetricOptions options = {}) : ConfusionMatrixMetric(std::move(options), "f1_score") {}
  /// The F1 score of class_id, or the chosen average.
  double result() const override { return scores().f1; }
};

/// The metric a compile() string names: "accuracy"/"acc", "precision", "recall", "f1_score"/"f1",
/// "top_k_categorical_accuracy" and "sparse_top_k_categorical_accuracy" (k = 5);
/// throws naming the string and the known names otherwise.
std::shared_ptr<Metric> make_metric(std::string_view name);

}  // namespace tg::nn

// einsum: parse the equation, then reduce each operand's own indices, and contract operands
// pairwise as one batched matmul ([batch, left, contracted] @ [batch, contracted, right]), all
// through differentiable ops (permute, reshape, sum, matmul).
#include <algorithm>
#include <cctype>
#include <map>
#include <string>

#include "tapegrad/autograd/check.hpp"
#include "tapegrad/ops/linalg.hpp"
#include "tapegrad/ops/reduce.hpp"
#include "tapegrad/ops/shape.hpp"

namespace tg {
namespace {

using I = std::int64_t;

// One operand: its tensor and one index letter per axis.
struct Term {
  Tensor t;
  std::string idx;
};

std::size_t count_in(const std::string& s, char c) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), c));
}

// The axes of `from` in the order of `to` (both permutations of the same letters).
std::vector<int> order(const std::string& from, const std::string& to) {
  std::vector<int> perm;
  for (char c : to) perm.push_back(static_cast<int>(from.find(c)));
  return perm;
}

// Sums out the indices of `term` that no longer matter (not in `keep`).
Term reduce_unneeded(Term term, const std::string& keep) {
  Axes axes;
  std::string left;
  for (std::size_t i = 0; i < term.idx.size(); ++i) {
    if (keep.find(term.idx[i]) == std::string::npos)
      axes.push_back(static_cast<int>(i));
    else
      left += term.idx[i];
  }
  if (!axes.empty()) term = {sum(term.t, axes), left};
  return term;
}

// Contracts a and b, keeping the indices in `keep` (the output's and later operands').
Term contract(Term a, Term b, const std::string& keep, const std::map<char, std::size_t>& size) {
  a = reduce_unneeded(std::move(a), keep + b.idx);
  b = reduce_unneeded(std::move(b), keep + a.idx);
  std::string batch, left, right, summed;
  for (char c : a.idx) {
    const bool in_b = b.idx.find(c) != std::string::npos, kept = keep.find(c) != std::string::npos;
    (in_b ? (kept ? batch : summed) : left) += c;
  }
  for (char c : b.idx)
    if (a.idx.find(c) == std::string::npos) right += c;
  auto product = [&](const std::string& s) {
    I p = 1;
    for (char c : s) p *= static_cast<I>(size.at(c));
    return p;
  };
  const I nb = product(batch), nl = product(left), nr = product(right), nc = product(summed);
  const Tensor am = reshape(permute(a.t, order(a.idx, batch + left + summed)), {nb, nl, nc});
  const Tensor bm = reshape(permute(b.t, order(b.idx, batch + summed + right)), {nb, nc, nr});
  std::vector<I> out_shape;
  for (char c : batch + left + right) out_shape.push_back(static_cast<I>(size.at(c)));
  return {reshape(matmul(am, bm), out_shape), batch + left + right};
}

}  // namespace

Tensor einsum(std::string_view equation, const TensorList& operands) {
  std::string eq;
  for (char c : equation)
    if (c != ' ') eq += c;
  const std::size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> inputs(1);
  for (char c : lhs) {
    if (c == ',') {
      inputs.emplace_back();
      continue;
    }
    TG_CHECK(std::isalpha(static_cast<unsigned char>(c)),
             "einsum: '{}' in \"{}\" is not an index letter (\"...\" is not supported)", c, equation);
    inputs.back() += c;
  }
  TG_CHECK(inputs.size() == operands.size(), "einsum: \"{}\" names {} operands, got {}", equation, inputs.size(),
           operands.size());
  std::string out;
  if (arrow != std::string::npos) {
    out = eq.substr(arrow + 2);
    for (char c : out)
      TG_CHECK(count_in(out, c) == 1 && lhs.find(c) != std::string::npos,
               "einsum: output index '{}' in \"{}\" must appear once, and in an operand", c, equation);
  } else {
    for (char c = 'A'; c <= 'z'; ++c)
      if (count_in(lhs, c) == 1) out += c;
  }
  std::map<char, std::size_t> size;
  std::vector<Term> terms;
  for (std::size_t k = 0; k < operands.size(); ++k) {
    const Tensor& t = operands[k];
    const std::string& idx = inputs[k];
    TG_CHECK(t.ndim() == idx.size(), "einsum: operand {} has shape {} but \"{}\" names {} axes", k,
             shape_str(t.shape()), idx, idx.size());
    TG_CHECK(is_floating(t.dtype()) && t.dtype() == operands[0].dtype(),
             "einsum: expected float operands of one dtype, got {} for operand {} ({} for operand 0)", t.dtype(), k,
             operands[0].dtype());
    for (std::size_t i = 0; i < idx.size(); ++i) {
      TG_CHECK(count_in(idx, idx[i]) == 1,
               "einsum: index '{}' repeats in operand {} (\"{}\"): diagonals are not supported", idx[i], k, idx);
      auto [it, fresh] = size.emplace(idx[i], t.shape(i));
      TG_CHECK(fresh || it->second == t.shape(i), "einsum: index '{}' is {} in operand {} ({}) but {} before", idx[i],
               t.shape(i), k, shape_str(t.shape()), it->second);
    }
    terms.push_back({t, idx});
  }
  // Left to right: after operand k, keep the output's indices and those of the operands after k.
  auto needed_after = [&](std::size_t k) {
    std::string keep = out;
    for (std::size_t j = k + 1; j < terms.size(); ++j) keep += terms[j].idx;
    return keep;
  };
  Term acc = reduce_unneeded(terms[0], needed_after(0));
  for (std::size_t k = 1; k < terms.size(); ++k) acc = contract(std::move(acc), terms[k], needed_after(k), size);
  acc = reduce_unneeded(std::move(acc), out);
  return acc.idx == out ? acc.t : permute(acc.t, order(acc.idx, out));
}

}  // namespace tg

#pragma once
// TG_CHECK(cond, "fmt format", args...): throws tg::Error with the formatted message when cond is
// false, as every op checks its input (defined at the bottom layer, kernels/check.hpp); with fmt's
// formatters for Dtype and Tensor, so that messages name them.
#include "tapegrad/autograd/format.hpp"
#include "tapegrad/kernels/check.hpp"

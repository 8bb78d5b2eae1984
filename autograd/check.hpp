#pragma once
// TG_CHECK(cond, "fmt format", args...): throws tg::Error with the formatted message when cond is
// false, as every op checks its input (defined at the bottom layer, kernels/check.hpp).
#include "tapegrad/kernels/check.hpp"

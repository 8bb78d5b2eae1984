#pragma once
// tg::Error, thrown on every bad input (defined at the bottom layer, kernels/error.hpp, which
// every layer uses). TG_CHECK, which formats the message, is in autograd/check.hpp.
#include "tapegrad/kernels/error.hpp"

#pragma once
// tg::Error and TG_CHECK (defined at the bottom layer, kernels/error.hpp, which every layer uses).
#include "tapegrad/kernels/error.hpp"

#pragma once
// tg::Error and TG_CHECK (defined at the bottom layer, kernels/error.hpp, which every layer uses).
#include "kernels/error.hpp"

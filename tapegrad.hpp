#pragma once
// tapegrad: everything in one include.
#include "autograd/error.hpp"
#include "autograd/function.hpp"
#include "autograd/generator.hpp"
#include "autograd/grad_mode.hpp"
#include "autograd/gradcheck.hpp"
#include "autograd/tensor.hpp"
#include "ops/elementwise.hpp"
#include "ops/linalg.hpp"
#include "ops/reduce.hpp"
#include "ops/shape.hpp"

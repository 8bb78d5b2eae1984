#include "tapegrad/autograd/dtype.hpp"

#include <ostream>

namespace tg {

std::ostream& operator<<(std::ostream& os, Dtype d) { return os << dtype_name(d); }

}  // namespace tg

// A user's own header that shares its path with one of tapegrad's (nn/module.hpp). tapegrad's
// headers must not pick it up in place of theirs, and the user's code must get this one.
#pragma once

namespace user_project {
struct Module {
  int layers = 3;
};
}  // namespace user_project

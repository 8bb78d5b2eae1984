# Installs the library (libtapegrad.so.0, a versioned SONAME), its public headers (everything
# under autograd/, ops/, nn/, optim/, datasets/ and distributed/ but the detail/ folders, and kernels/error.hpp
# and kernels/check.hpp;
# the rest of kernels/ is internal),
# a CMake package (find_package(tapegrad)) and a pkg-config file (pkg-config tapegrad).
include(CMakePackageConfigHelpers)

install(TARGETS tapegrad EXPORT tapegradTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(folder IN ITEMS autograd ops nn optim datasets distributed)
  install(DIRECTORY ${folder}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad/${folder}
    FILES_MATCHING PATTERN "*.hpp" PATTERN "detail" EXCLUDE)
endforeach()
install(FILES tapegrad.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad)
# tg::Error and TG_CHECK are defined at the bottom layer; autograd/error.hpp and autograd/check.hpp,
# which users include, include them.
install(FILES kernels/error.hpp kernels/check.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad/kernels)

install(EXPORT tapegradTargets NAMESPACE tapegrad:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tapegrad)
configure_package_config_file(cmake/tapegradConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/tapegradConfig.cmake"
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tapegrad)
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/tapegradConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/tapegradConfig.cmake"
  "${CMAKE_CURRENT_BINARY_DIR}/tapegradConfigVersion.cmake"
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tapegrad)

# pkg-config: the same include paths and library as the CMake package; xtensor and fmt (which the
# public headers use) through their own .pc files.
# The prefix is found from the file's own place (${pcfiledir}), so an installed tree can move.
file(RELATIVE_PATH TG_PC_TO_PREFIX "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
configure_file(cmake/tapegrad.pc.in "${CMAKE_CURRENT_BINARY_DIR}/tapegrad.pc" @ONLY)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/tapegrad.pc" DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

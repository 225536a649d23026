# Installation: libraries, headers, CMake package (find_package(Terrarium)),
# pkg-config file (terrarium.pc) and the terrarium binary.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(TERRARIUM_EXPORTED_TARGETS libterrarium terrarium_guest terrarium_bridge_imports
    terrarium_wasi_imports terrarium_wasi terrarium_engine)
install(TARGETS ${TERRARIUM_EXPORTED_TARGETS} EXPORT TerrariumTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS terrarium RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT TerrariumTargets NAMESPACE Terrarium::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Terrarium)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/TerrariumConfig.cmake.in
  ${CMAKE_BINARY_DIR}/TerrariumConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Terrarium)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/TerrariumConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/TerrariumConfig.cmake ${CMAKE_BINARY_DIR}/TerrariumConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/Terrarium)
configure_file(${PROJECT_SOURCE_DIR}/cmake/terrarium.pc.in ${CMAKE_BINARY_DIR}/terrarium.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/terrarium.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

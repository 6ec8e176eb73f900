# gs_module(NAME [SOURCES ...] [DEPS module...] [LIBS target...])
#
# Declares the static library gs_<NAME> for the module in the folder <NAME>/, built from every
# <NAME>/*.c and *.cc (globbed, so adding a file needs no CMake edit) plus SOURCES. Its headers are
# reachable as "<NAME>/x.h" only through a per-module include folder in the build tree
# (inc/<NAME>/<NAME> -> source folder), which is an INTERFACE include of gs_<NAME>. Modules link
# their DEPS and LIBS PRIVATE, so include folders do not travel: a module that includes a header
# of a module it does not depend on fails with "No such file". Module-private headers end in
# _int.h; tests/check_includes.sh rejects including them from another module.
function(gs_module name)
  cmake_parse_arguments(M "" "" "SOURCES;DEPS;LIBS" ${ARGN})
  set(inc "${CMAKE_BINARY_DIR}/inc/${name}")
  file(MAKE_DIRECTORY "${inc}")
  if(NOT EXISTS "${inc}/${name}")
    file(CREATE_LINK "${CMAKE_SOURCE_DIR}/${name}" "${inc}/${name}" SYMBOLIC)
  endif()
  file(GLOB srcs CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/*.c" "${CMAKE_CURRENT_SOURCE_DIR}/*.cc")
  add_library(gs_${name} STATIC ${srcs} ${M_SOURCES})
  target_include_directories(gs_${name} PUBLIC "${inc}")
  foreach(d ${M_DEPS})
    target_link_libraries(gs_${name} PRIVATE gs_${d})
  endforeach()
  target_link_libraries(gs_${name} PRIVATE ${M_LIBS})
endfunction()

# gs_link_modules(TARGET module...): a program (cli, a test, a bench) links modules; it sees
# their headers, and the static libraries' own dependencies are carried by CMake's link
# interface (PRIVATE deps of static libraries still appear on the link line).
function(gs_link_modules target)
  foreach(m ${ARGN})
    target_link_libraries(${target} PRIVATE gs_${m})
  endforeach()
endfunction()

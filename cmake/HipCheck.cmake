# Compile check of every GPU source with hipcc for gfx1010 and gfx1030 (objects only, not linked).

if(POLICY CMP0116)
  cmake_policy(SET CMP0116 NEW)  # depfile paths relative to the build directory
endif()

find_program(GEMMCONV_HIPCC hipcc PATHS /usr/bin /opt/rocm/bin)
if(NOT GEMMCONV_HIPCC)
  message(FATAL_ERROR "GEMMCONV_HIP_CHECK is ON but hipcc was not found")
endif()

file(GLOB_RECURSE GEMMCONV_HIP_CHECK_SOURCES CONFIGURE_DEPENDS
  ${CMAKE_CURRENT_SOURCE_DIR}/src/*.cu)

set(GEMMCONV_HIP_CHECK_FLAGS
  -x hip --offload-arch=gfx1010 --offload-arch=gfx1030 -std=c++17 -DGEMMCONV_WITH_GPU=1
  -I${CMAKE_CURRENT_SOURCE_DIR}/include -I${CMAKE_CURRENT_SOURCE_DIR}/src -Wall -Werror)

set(GEMMCONV_HIP_CHECK_OBJECTS)
foreach(src IN LISTS GEMMCONV_HIP_CHECK_SOURCES)
  file(RELATIVE_PATH rel ${CMAKE_CURRENT_SOURCE_DIR} ${src})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/hip_check/${rel}.o)
  get_filename_component(obj_dir ${obj} DIRECTORY)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${obj_dir}
    COMMAND ${GEMMCONV_HIPCC} ${GEMMCONV_HIP_CHECK_FLAGS} -MD -MF ${obj}.d -c ${src} -o ${obj}
    DEPENDS ${src}
    DEPFILE ${obj}.d
    COMMENT "hipcc (gfx1010, gfx1030): ${rel}"
    VERBATIM)
  list(APPEND GEMMCONV_HIP_CHECK_OBJECTS ${obj})
endforeach()

add_custom_target(hip_check ALL DEPENDS ${GEMMCONV_HIP_CHECK_OBJECTS})

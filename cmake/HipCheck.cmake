# Compile check of every GPU source with the host's hipcc (Debian 12: HIP 5.2, LLVM 15) for gfx1010
# and gfx1030 (objects only, not linked: Debian 12 has no rocBLAS). The gfx1030 objects are built
# gfx1010-safe as in the HIP backend (GEMMCONV_GFX1030_SAFE), and CTest audits them
# (isa_audit.hip_check) with llvm-objdump. The full HIP build runs with a current toolchain in the
# `hip` stage of scripts/test.sh (cmake/Hip.cmake).

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

set(GEMMCONV_HIP_CHECK_LAUNCHER)
if(GEMMCONV_GFX1030_SAFE)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  set(GEMMCONV_HIP_CHECK_LAUNCHER
      ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/hip_arch_features.py --arch gfx1030
      --features ${CMAKE_CURRENT_LIST_DIR}/gfx1030_safe_features.txt --)
endif()

set(GEMMCONV_HIP_CHECK_OBJECTS)
foreach(src IN LISTS GEMMCONV_HIP_CHECK_SOURCES)
  file(RELATIVE_PATH rel ${CMAKE_CURRENT_SOURCE_DIR} ${src})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/hip_check/${rel}.o)
  get_filename_component(obj_dir ${obj} DIRECTORY)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${obj_dir}
    COMMAND ${GEMMCONV_HIP_CHECK_LAUNCHER} ${GEMMCONV_HIPCC} ${GEMMCONV_HIP_CHECK_FLAGS} -MD -MF
            ${obj}.d -c ${src} -o ${obj}
    DEPENDS ${src} ${CMAKE_CURRENT_LIST_DIR}/gfx1030_safe_features.txt
            ${CMAKE_CURRENT_LIST_DIR}/hip_arch_features.py
    DEPFILE ${obj}.d
    COMMENT "hipcc (gfx1010, gfx1030): ${rel}"
    VERBATIM)
  list(APPEND GEMMCONV_HIP_CHECK_OBJECTS ${obj})
endforeach()

add_custom_target(hip_check ALL DEPENDS ${GEMMCONV_HIP_CHECK_OBJECTS})

if(GEMMCONV_TESTS AND GEMMCONV_GFX1030_SAFE)
  find_program(GEMMCONV_HIP_CHECK_OBJDUMP NAMES llvm-objdump-15 llvm-objdump)
  if(GEMMCONV_HIP_CHECK_OBJDUMP)
    add_test(NAME isa_audit.hip_check
             COMMAND ${Python3_EXECUTABLE} -m gemmconv.diagnosis.isa_audit --objdump
                     ${GEMMCONV_HIP_CHECK_OBJDUMP} ${GEMMCONV_HIP_CHECK_OBJECTS})
    set_tests_properties(isa_audit.hip_check PROPERTIES
                         ENVIRONMENT PYTHONPATH=${PROJECT_SOURCE_DIR}/python)
  else()
    message(STATUS "gemmconv: no llvm-objdump: the hip_check objects are not audited")
  endif()
endif()

# The HIP backend (GEMMCONV_GPU=hip): the same .cu sources as the CUDA build, compiled as HIP by
# clang for gfx1010 and gfx1030, with the engine's rocBLAS GEMM provider.
#
# The gfx1030 objects are built gfx1010-safe by default (GEMMCONV_GFX1030_SAFE): clang gets the
# target features of cmake/gfx1030_safe_features.txt for the gfx1030 device compile only, through
# the compiler launcher cmake/hip_arch_features.py. docs/card-guide.md says why.

cmake_minimum_required(VERSION 3.21)  # the HIP language

if(NOT DEFINED CMAKE_HIP_ARCHITECTURES)
  set(CMAKE_HIP_ARCHITECTURES gfx1010 gfx1030)
endif()
enable_language(HIP)
set(CMAKE_HIP_STANDARD 17)
set(CMAKE_HIP_STANDARD_REQUIRED ON)
set(CMAKE_HIP_EXTENSIONS OFF)
find_package(hip REQUIRED CONFIG)
find_package(rocblas REQUIRED CONFIG)

set(GEMMCONV_HIP_WARNINGS -Wall -Wextra)
if(GEMMCONV_WERROR)
  list(APPEND GEMMCONV_HIP_WARNINGS -Werror)
endif()

set(GEMMCONV_HIP_SAFE_LAUNCHER)
if(GEMMCONV_GFX1030_SAFE AND "gfx1030" IN_LIST CMAKE_HIP_ARCHITECTURES)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  set(GEMMCONV_HIP_SAFE_LAUNCHER
      ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/hip_arch_features.py --arch gfx1030
      --features ${CMAKE_CURRENT_LIST_DIR}/gfx1030_safe_features.txt --)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
               ${CMAKE_CURRENT_LIST_DIR}/gfx1030_safe_features.txt)
endif()
message(STATUS "gemmconv: HIP ${hip_VERSION} with ${CMAKE_HIP_COMPILER} "
               "(${CMAKE_HIP_COMPILER_VERSION}) for ${CMAKE_HIP_ARCHITECTURES}; gfx1030 "
               "gfx1010-safe: ${GEMMCONV_GFX1030_SAFE}; rocBLAS ${rocblas_VERSION}")

# gemmconv_hip_target(TARGET): the gfx1010-safe launcher on TARGET's HIP compiles, if enabled.
function(gemmconv_hip_target target)
  if(GEMMCONV_HIP_SAFE_LAUNCHER)
    set_property(TARGET ${target} PROPERTY HIP_COMPILER_LAUNCHER ${GEMMCONV_HIP_SAFE_LAUNCHER})
  endif()
endfunction()

# The ISA audit (python/gemmconv/diagnosis/isa_audit.py) in CTest: every gfx1030 object of the
# library must pass it, and a fixture kernel with a dot instruction, built for plain gfx1030, must
# fail it. llvm-objdump is needed; without it the tests are not defined, and configure says so.
if(GEMMCONV_TESTS AND "gfx1030" IN_LIST CMAKE_HIP_ARCHITECTURES)
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  find_program(GEMMCONV_LLVM_OBJDUMP NAMES llvm-objdump-21 llvm-objdump-20 llvm-objdump-19
                                           llvm-objdump-18 llvm-objdump-17 llvm-objdump
               PATHS /opt/rocm/llvm/bin)
  set(dot_obj ${CMAKE_BINARY_DIR}/audit/dot_plain_gfx1030.o)
  add_custom_command(
    OUTPUT ${dot_obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/audit
    COMMAND ${CMAKE_HIP_COMPILER} -x hip --offload-arch=gfx1030 -O3 -c
            ${PROJECT_SOURCE_DIR}/tests/hip/dot_kernel.hip -o ${dot_obj}
    DEPENDS ${PROJECT_SOURCE_DIR}/tests/hip/dot_kernel.hip
    COMMENT "audit fixture: dot kernel for plain gfx1030"
    VERBATIM)
  add_custom_target(gemmconv_audit_fixture ALL DEPENDS ${dot_obj})
  if(GEMMCONV_LLVM_OBJDUMP)
    set(audit ${Python3_EXECUTABLE} -m gemmconv.diagnosis.isa_audit --objdump
              ${GEMMCONV_LLVM_OBJDUMP})
    set(audit_env PYTHONPATH=${PROJECT_SOURCE_DIR}/python)
    if(GEMMCONV_GFX1030_SAFE)
      set(lib_test isa_audit.library)
    else()
      # A plain gfx1030 build is expected to fail the audit; the test records that it does.
      set(lib_test isa_audit.library_plain_gfx1030)
    endif()
    add_test(NAME ${lib_test} COMMAND ${audit} $<TARGET_FILE:gemmconv>)
    if(NOT GEMMCONV_GFX1030_SAFE)
      set_tests_properties(${lib_test} PROPERTIES WILL_FAIL TRUE)
    endif()
    add_test(NAME isa_audit.dot_fixture_fails
             COMMAND sh -c "\"$@\" >\"${dot_obj}.txt\"; rc=$?; cat \"${dot_obj}.txt\"; test $rc -eq 1 && grep -q 'gfx10_3-only: v_dot' \"${dot_obj}.txt\""
                     sh ${audit} --verbose ${dot_obj})
    set_tests_properties(${lib_test} isa_audit.dot_fixture_fails PROPERTIES
                         ENVIRONMENT "${audit_env}")
  else()
    message(STATUS "gemmconv: no llvm-objdump found: the ISA audit tests are not defined")
  endif()
endif()

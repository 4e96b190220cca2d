# SentencePiece module (owned by the tokenizer work): built as a separate shared object.
#
# Debian 12's libsentencepiece (0.1.97) embeds protobuf-lite 3.14 and exports its symbols, while
# libtorch uses the system libprotobuf 3.21: linking both into one executable crashes the process
# in static initialisation. So libsentencepiece is linked only into this module, which the library
# dlopen()s at run time with RTLD_LOCAL|RTLD_DEEPBIND (src/tokenizer/sentencepiece.cpp) and talks to
# through a small C ABI (src/tokenizer/spm_module/spm_module_api.h).
find_path(CS_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
find_library(CS_SENTENCEPIECE_LIBRARY sentencepiece)
if(NOT CS_SENTENCEPIECE_INCLUDE_DIR OR NOT CS_SENTENCEPIECE_LIBRARY)
  message(FATAL_ERROR "circuitscope: libsentencepiece not found (Debian: apt-get install libsentencepiece-dev)")
endif()

add_library(circuitscope_spm MODULE ${PROJECT_SOURCE_DIR}/src/tokenizer/spm_module/spm_module.cpp)
target_include_directories(circuitscope_spm PRIVATE ${CS_SENTENCEPIECE_INCLUDE_DIR})
target_link_libraries(circuitscope_spm PRIVATE ${CS_SENTENCEPIECE_LIBRARY})
# The file name and folder are part of the run-time lookup (CIRCUITSCOPE_SPM_MODULE_DIR = binary dir).
set_target_properties(circuitscope_spm PROPERTIES
  PREFIX "lib" OUTPUT_NAME "circuitscope_spm" SUFFIX ".so"
  LIBRARY_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}"
  CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
target_compile_options(circuitscope_spm PRIVATE -Wall -Wextra -Wno-unused-parameter)
# Every symbol resolved at link time; nothing but the cs_spm_* C functions leaks out.
target_link_options(circuitscope_spm PRIVATE "LINKER:--no-undefined" "LINKER:--exclude-libs,ALL")

# The library loads the module at run time, so whatever links circuitscope_lib (the CLI, the
# tests) must find it built: make the library target depend on it.
add_dependencies(circuitscope_lib circuitscope_spm)

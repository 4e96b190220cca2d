# libtorch from Debian links libblas.so.3 / liblapack.so.3 / libopenblas.so.0 by soname, which the
# system "alternatives" may point at reference BLAS (~30x slower). We pin OpenBLAS's OpenMP build with
# an old-style DT_RPATH: unlike RUNPATH it also applies to libtorch's own dependencies.
set(CS_OPENBLAS_DIR "" CACHE PATH "Folder holding OpenBLAS (OpenMP) libblas.so.3; empty = autodetect")
if(NOT CS_OPENBLAS_DIR)
  foreach(cand /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp /usr/lib/x86_64-linux-gnu/openblas-openmp
               /usr/lib/aarch64-linux-gnu/openblas-openmp)
    if(EXISTS "${cand}/libblas.so.3")
      set(CS_OPENBLAS_DIR "${cand}")
      break()
    endif()
  endforeach()
endif()
if(CS_OPENBLAS_DIR)
  message(STATUS "circuitscope: pinning OpenBLAS (OpenMP) from ${CS_OPENBLAS_DIR}")
else()
  message(WARNING "circuitscope: libopenblas0-openmp not found; matmul speed depends on the system BLAS")
endif()

function(cs_use_openblas target)
  if(CS_OPENBLAS_DIR)
    target_link_options(${target} PRIVATE "LINKER:--disable-new-dtags" "LINKER:-rpath,${CS_OPENBLAS_DIR}")
  endif()
endfunction()

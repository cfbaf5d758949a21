# Arrow C++ comes from the pyarrow wheel (codecs, xxhash; filesystems for object stores):
# its headers (pyarrow.get_include()) and its libarrow.so.<major><minor>, made into the
# IMPORTED target `chute_arrow`. Never link a second libarrow into the process.
# Sets CHUTE_ARROW_LIB_DIR (for build RPATHs).
execute_process(
  COMMAND "${Python_EXECUTABLE}" -c
    "import glob, os, pyarrow; d = pyarrow.get_library_dirs()[0]; libs = sorted(glob.glob(os.path.join(d, 'libarrow.so.[0-9]*'))); print(pyarrow.get_include() + ';' + (libs[0] if libs else ''))"
  OUTPUT_VARIABLE _chute_arrow OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _chute_arrow_rc)
list(GET _chute_arrow 0 CHUTE_ARROW_INCLUDE_DIR)
list(LENGTH _chute_arrow _chute_arrow_n)
if(NOT _chute_arrow_rc EQUAL 0 OR _chute_arrow_n LESS 2)
  message(FATAL_ERROR "chute needs pyarrow (pip install 'pyarrow>=26,<27') in ${Python_EXECUTABLE}")
endif()
list(GET _chute_arrow 1 CHUTE_ARROW_LIBRARY)
if(NOT EXISTS "${CHUTE_ARROW_LIBRARY}")
  message(FATAL_ERROR "no libarrow.so.* next to pyarrow in ${Python_EXECUTABLE}")
endif()
get_filename_component(CHUTE_ARROW_LIB_DIR "${CHUTE_ARROW_LIBRARY}" DIRECTORY)
message(STATUS "chute: Arrow from pyarrow: ${CHUTE_ARROW_LIBRARY}")

add_library(chute_arrow SHARED IMPORTED)
set_target_properties(chute_arrow PROPERTIES
  IMPORTED_LOCATION "${CHUTE_ARROW_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${CHUTE_ARROW_INCLUDE_DIR}")

# S3 lives in its own library next to libarrow (same version suffix).
string(REPLACE "libarrow.so" "libarrow_s3.so" CHUTE_ARROW_S3_LIBRARY "${CHUTE_ARROW_LIBRARY}")
if(NOT EXISTS "${CHUTE_ARROW_S3_LIBRARY}")
  message(FATAL_ERROR "no ${CHUTE_ARROW_S3_LIBRARY}: this pyarrow was built without S3")
endif()
add_library(chute_arrow_s3 SHARED IMPORTED)
set_target_properties(chute_arrow_s3 PROPERTIES
  IMPORTED_LOCATION "${CHUTE_ARROW_S3_LIBRARY}"
  INTERFACE_LINK_LIBRARIES chute_arrow)

# Parquet (reading Parquet datasets in place) likewise.
string(REPLACE "libarrow.so" "libparquet.so" CHUTE_PARQUET_LIBRARY "${CHUTE_ARROW_LIBRARY}")
if(NOT EXISTS "${CHUTE_PARQUET_LIBRARY}")
  message(FATAL_ERROR "no ${CHUTE_PARQUET_LIBRARY}: this pyarrow was built without Parquet")
endif()
add_library(chute_parquet SHARED IMPORTED)
set_target_properties(chute_parquet PROPERTIES
  IMPORTED_LOCATION "${CHUTE_PARQUET_LIBRARY}"
  INTERFACE_LINK_LIBRARIES chute_arrow)

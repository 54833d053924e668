# gemmconv_sources(OUT GROUP...): the files matching the patterns of GROUPs in cmake/sources.txt.

set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_CURRENT_LIST_DIR}/sources.txt)

function(gemmconv_sources out)
  file(STRINGS ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/sources.txt lines REGEX "^[a-z_]+[ \t]+[^ \t]")
  set(patterns)
  foreach(line IN LISTS lines)
    if(line MATCHES "^([a-z_]+)[ \t]+([^ \t]+)[ \t]*$")
      if(CMAKE_MATCH_1 IN_LIST ARGN)
        list(APPEND patterns ${PROJECT_SOURCE_DIR}/${CMAKE_MATCH_2})
      endif()
    endif()
  endforeach()
  if(NOT patterns)
    message(FATAL_ERROR "cmake/sources.txt has no pattern for ${ARGN}")
  endif()
  file(GLOB files CONFIGURE_DEPENDS ${patterns})
  list(SORT files)
  set(${out} ${files} PARENT_SCOPE)
endfunction()

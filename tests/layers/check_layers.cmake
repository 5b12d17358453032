# The runtime's layers, checked (cmake -P; tests/CMakeLists.txt runs it).
#
#   -DSOURCE_DIR=<the source tree>  -DLAYERS=<areas bottom first, |-separated>
#   -DWORK=<a scratch directory>
#
# Fails when
# - a folder of runtime/ is not a layer, or a layer has no library
#   custodian_<area> in the build's target graph (cmake --graphviz);
# - a library custodian_<area> links one of a layer not below it;
# - a file of runtime/<area>/ includes a header of an area not below it;
# - a service (actors/<name>/, its tests aside) includes a runtime header
#   other than the service API: runtime/common, runtime/crypto, runtime/service.
# Every edge pointing strictly down a total order means no cycle.
cmake_minimum_required(VERSION 3.16)
foreach(v SOURCE_DIR LAYERS WORK)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_layers: -D${v}=... is required")
  endif()
endforeach()
string(REPLACE "|" ";" layers "${LAYERS}")
set(problems "")

# 1. Every folder of runtime/ is a layer.
file(GLOB entries LIST_DIRECTORIES true RELATIVE ${SOURCE_DIR}/runtime ${SOURCE_DIR}/runtime/*)
foreach(e ${entries})
  if(IS_DIRECTORY ${SOURCE_DIR}/runtime/${e} AND NOT e IN_LIST layers)
    list(APPEND problems "runtime/${e}/ is not a layer (CUSTODIAN_LAYERS in runtime/CMakeLists.txt)")
  endif()
endforeach()

# 2. Includes between areas.
set(include_edges 0)
set(include_pairs "")
foreach(area ${layers})
  list(FIND layers ${area} own)
  file(GLOB_RECURSE files ${SOURCE_DIR}/runtime/${area}/*.hpp ${SOURCE_DIR}/runtime/${area}/*.cpp)
  foreach(f ${files})
    file(STRINGS ${f} incs REGEX "^[ \t]*#[ \t]*include[ \t]+\"runtime/[a-z_]+/")
    foreach(line ${incs})
      string(REGEX REPLACE ".*\"runtime/([a-z_]+)/.*" "\\1" to "${line}")
      if(to STREQUAL area)
        continue()
      endif()
      list(FIND layers ${to} below)
      file(RELATIVE_PATH rel ${SOURCE_DIR} ${f})
      if(below LESS 0 OR below GREATER own)
        list(APPEND problems "${rel} includes runtime/${to}/, which is not below ${area}")
      endif()
      if(NOT "${area}>${to}" IN_LIST include_pairs)
        list(APPEND include_pairs "${area}>${to}")
      endif()
    endforeach()
  endforeach()
endforeach()
list(LENGTH include_pairs include_edges)

# 3. The services see the service API only.
file(GLOB_RECURSE service_files ${SOURCE_DIR}/actors/*.hpp ${SOURCE_DIR}/actors/*.cpp)
foreach(f ${service_files})
  if(f MATCHES "_test\\.cpp$")
    continue()  # a service's tests run on the testkit
  endif()
  file(STRINGS ${f} incs REGEX "^[ \t]*#[ \t]*include[ \t]+\"runtime/[a-z_]+/")
  foreach(line ${incs})
    string(REGEX REPLACE ".*\"runtime/([a-z_]+)/.*" "\\1" to "${line}")
    if(NOT to MATCHES "^(common|crypto|service)$")
      file(RELATIVE_PATH rel ${SOURCE_DIR} ${f})
      list(APPEND problems "${rel} includes runtime/${to}/: a service sees the service API only")
    endif()
  endforeach()
endforeach()

# 4. The libraries' links, from CMake's own graph of a fresh configuration.
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK} --graphviz=${WORK}/targets.dot
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT EXISTS ${WORK}/targets.dot)
  message(FATAL_ERROR "check_layers: cmake --graphviz failed (${rc}): ${err}")
endif()
file(STRINGS ${WORK}/targets.dot dot)
set(link_edges 0)
foreach(line ${dot})
  if(line MATCHES "^[ \t]*\"(node[0-9]+)\" \\[ label = \"([^\"]+)\"")
    set(id ${CMAKE_MATCH_1})
    # "custodian_saga\n(custodian::saga)": the name, without its alias
    string(REGEX REPLACE "\\\\n.*" "" name "${CMAKE_MATCH_2}")
    set(label_${id} "${name}")
  endif()
endforeach()
set(seen "")
foreach(line ${dot})
  if(line MATCHES "^[ \t]*\"(node[0-9]+)\" -> \"(node[0-9]+)\"")
    set(from "${label_${CMAKE_MATCH_1}}")
    set(to "${label_${CMAKE_MATCH_2}}")
    if(from MATCHES "^custodian_([a-z_]+)$")
      set(a ${CMAKE_MATCH_1})
      list(FIND layers ${a} own)
      if(own LESS 0)
        continue()
      endif()
      list(APPEND seen ${a})
      if(to MATCHES "^custodian_([a-z_]+)$" AND CMAKE_MATCH_1 IN_LIST layers)
        set(b ${CMAKE_MATCH_1})
        math(EXPR link_edges "${link_edges} + 1")
        list(FIND layers ${b} below)
        if(NOT below LESS own)
          list(APPEND problems "custodian_${a} links custodian_${b}, which is not below it")
        endif()
      endif()
    endif()
  endif()
endforeach()
foreach(area ${layers})
  set(found FALSE)
  foreach(line ${dot})
    if(line MATCHES "label = \"custodian_${area}[\\\"]")
      set(found TRUE)
      break()
    endif()
  endforeach()
  if(NOT found)
    list(APPEND problems "no library custodian_${area} in the build's target graph")
  endif()
endforeach()

# The gateway's routes answer errors only through api_error(errc, ...) /
# reply_error (runtime/gateway/errors.hpp): no HTTP status number of their own.
# The HTTP transport (http_server, http_session) answers its own refusals.
file(GLOB gateway_sources ${SOURCE_DIR}/runtime/gateway/*.cpp ${SOURCE_DIR}/runtime/gateway/*.hpp)
foreach(f ${gateway_sources})
  get_filename_component(name ${f} NAME)
  if(name MATCHES "^http_(server|session|internal)")
    continue()
  endif()
  file(STRINGS ${f} lines REGEX "http::error\\(|http::json\\([45][0-9][0-9],")
  foreach(line ${lines})
    string(STRIP "${line}" line)
    list(APPEND problems "runtime/gateway/${name} answers an HTTP status of its own: ${line}")
  endforeach()
endforeach()

list(LENGTH layers n)
message(STATUS "layers: ${n} areas, ${include_edges} include edges and ${link_edges} link edges between them")
if(problems)
  list(LENGTH problems np)
  string(REPLACE ";" "\n  " text "${problems}")
  message(FATAL_ERROR "check_layers: ${np} problem(s):\n  ${text}")
endif()
message(STATUS "layers: every edge points down ${LAYERS}: no cycle")

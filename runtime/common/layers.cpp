// The runtime names no service and cannot include one: its include path holds
// runtime/ only (runtime/CMakeLists.txt links include-runtime/runtime to it).
// Compiled into the runtime and node libraries, this file breaks their build
// if the source tree's root, and with it actors/, becomes reachable from them.
#if __has_include("actors/CMakeLists.txt")
#error "actors/ is on the runtime's include path: the runtime must not see the services"
#endif
#if !__has_include("runtime/common/ids.hpp")
#error "runtime/ is not on the runtime's include path"
#endif
namespace custodian {}

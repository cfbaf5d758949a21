// The one export macro of chute's public C++ API. The library is built with
// -fvisibility=hidden; only declarations marked CHUTE_API are visible to consumers.
#pragma once

#if defined(_WIN32)
#  if defined(CHUTE_BUILDING_LIBRARY)
#    define CHUTE_API __declspec(dllexport)
#  else
#    define CHUTE_API __declspec(dllimport)
#  endif
#else
#  define CHUTE_API __attribute__((visibility("default")))
#endif

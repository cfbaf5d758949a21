# TLS for https:// objects: the system's OpenSSL (Debian: libssl-dev), made into the
# INTERFACE target `chute_tls` (CHUTE_WITH_OPENSSL=1) and the libraries to link,
# CHUTE_TLS_LIBRARIES. Optional: without it chute builds, and https:// URLs fail with an
# error saying how to get TLS.
find_package(OpenSSL 3.0 COMPONENTS SSL Crypto)
add_library(chute_tls INTERFACE)
if(OPENSSL_FOUND)
  message(STATUS "chute: TLS from OpenSSL ${OPENSSL_VERSION}")
  set(CHUTE_TLS_LIBRARIES OpenSSL::SSL OpenSSL::Crypto)
  target_compile_definitions(chute_tls INTERFACE CHUTE_WITH_OPENSSL=1)
else()
  message(WARNING "chute: OpenSSL not found (install libssl-dev): https:// objects will not be readable")
  target_compile_definitions(chute_tls INTERFACE CHUTE_WITH_OPENSSL=0)
endif()

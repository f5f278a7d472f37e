{
  "targets": [
    {
      "target_name": "fusegate_native",
      "sources": ["lib/native/fusegate_native.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11"],
      "libraries": ["-lblkid", "-lmount"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    },
    {
      "target_name": "fdmap-preload",
      "type": "shared_library",
      "product_prefix": "",
      "sources": ["sandbox/native/fdmap-preload.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-std=gnu11", "-fvisibility=default"],
      "libraries": ["-ldl"]
    }
  ]
}

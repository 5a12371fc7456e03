{
  "targets": [
    {
      "target_name": "tortie_native",
      "sources": [
        "native/module.cc",
        "native/errors.cc",
        "native/args.cc",
        "native/object.cc",
        "native/program.cc",
        "native/map.cc",
        "native/attach.cc",
        "native/test_run.cc",
        "native/ring_buffer.cc",
        "native/btf.cc",
        "native/netns.cc",
        "native/netlink.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NODE_ADDON_API_CPP_EXCEPTIONS_ALL"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "cflags_cc!": ["-std=gnu++17", "-fno-rtti"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    }
  ]
}

var R=require("../../../chunks/[turbopack]_runtime.js")("server/app/api/hello/route.js")
R.c("server/chunks/[externals]__0bwf06g0pqv3h._.js")
R.c("server/chunks/[root-of-the-server]__0kwsqripi7_y4._.js")
R.c("server/chunks/_next-internal_server_app_api_hello_route_actions_1u4pgw-2ou0s4.js")
R.m(48687)
module.exports=R.m(48687).exports

module.exports=[68739,(e,o,d)=>{}];

//# sourceMappingURL=_next-internal_server_app_api_hello_route_actions_1u4pgw-2ou0s4.js.map
1:[["children",{"s":"__PAGE__","h":160}]]
0:{"b":"3NnCPPYO45TaI8sD-FR47","t":{"t":{"s":"","h":80,"c":"$Q1"}}}

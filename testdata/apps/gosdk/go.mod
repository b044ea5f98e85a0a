module example.com/gosdk

go 1.26.0

require github.com/wattd/wattd v0.0.0

replace github.com/wattd/wattd => ../../..

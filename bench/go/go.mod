module github.com/levee-dev/levee/bench/go

go 1.22.0

require (
	github.com/failsafe-go/failsafe-go v0.9.8
	github.com/levee-dev/levee/go v0.0.0
	github.com/sony/gobreaker/v2 v2.4.0
)

require github.com/bits-and-blooms/bitset v1.24.4 // indirect

replace github.com/levee-dev/levee/go => ../../go

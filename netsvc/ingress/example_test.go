package ingress_test

import (
	"fmt"

	"qnet.dev/qnet/netsvc/ingress"
)

func ExampleParseRate() {
	for _, s := range []string{"200/s", "10/m", "5/s burst 20", "200/day"} {
		r, err := ingress.ParseRate(s)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Printf("%s: %d per %v, burst %d\n", r, r.Count, r.Per, r.Burst)
	}
	// Output:
	// 200/s: 200 per 1s, burst 200
	// 10/m: 10 per 1m0s, burst 10
	// 5/s burst 20: 5 per 1s, burst 20
	// error: rate "200/day": unit "day" is not valid: want COUNT/UNIT with an optional " burst N", like "200/s", "10/m" or "5/s burst 20" (UNIT s, m or h; COUNT and N whole numbers from 1 to 1000000000)
}

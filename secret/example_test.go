package secret_test

import (
	"fmt"
	"log"

	"qnet.dev/qnet/identity"
	"qnet.dev/qnet/secret"
)

// The life of a secret: the network key is shared with a validator, an operator seals
// a secret to it, and the validator releases it to the node that runs a depot naming it.
func Example() {
	validator, _ := identity.Generate(true)
	node, _ := identity.Generate(true)

	// At network creation: a network key, stored only as shares on the ledger.
	netKey, err := secret.NewNetworkKey()
	if err != nil {
		log.Fatal(err)
	}
	share, _ := netKey.ShareFor("val-1", validator.Public().HPKE)

	// An operator seals version 1 of db-password to the network's public key.
	sealed, err := secret.Seal(netKey.Public(), "db-password", 1, secret.NewValue("db-password", 1, []byte("hunter2")))
	if err != nil {
		log.Fatal(err)
	}

	// The validator recovers the network key from its share and releases the secret
	// to node-a, whose depot web-1 names it.
	key, err := secret.OpenShare(share, validator.HPKE())
	if err != nil {
		log.Fatal(err)
	}
	to := secret.Target{Node: "node-a", Placement: "web-1"}
	depot := secret.Depot{Placement: "web-1", Node: "node-a", Secrets: []string{"db-password"}}
	if err := secret.Authorize(sealed.Name, to, depot); err != nil {
		log.Fatal(err)
	}
	released, err := secret.Reseal(sealed, key, node.Public().HPKE, to)
	if err != nil {
		log.Fatal(err)
	}

	// The node opens it for its depot.
	v, err := secret.OpenReleased(released, node.HPKE(), to)
	if err != nil {
		log.Fatal(err)
	}
	defer v.Wipe()
	fmt.Println(v)
	fmt.Printf("%s\n", v.Reveal())
	// Output:
	// [redacted db-password v1]
	// hunter2
}

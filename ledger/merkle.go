package ledger

import "crypto/sha256"

// MerkleRoot computes the root of the leaves as RFC 6962 does: leaves are hashed with
// a 0x00 prefix and inner nodes with 0x01, and an odd tail is carried up unpaired, so a
// leaf can never pass for a node and no two leaf lists share a root. The root of no
// leaves is the hash of the empty string.
func MerkleRoot(leaves []Hash) Hash {
	if len(leaves) == 0 {
		return sha256.Sum256(nil)
	}
	level := make([]Hash, len(leaves))
	for i, l := range leaves {
		level[i] = hashLeaf(l)
	}
	for len(level) > 1 {
		next := make([]Hash, 0, (len(level)+1)/2)
		for i := 0; i < len(level); i += 2 {
			if i+1 == len(level) {
				next = append(next, level[i])
				continue
			}
			next = append(next, hashNode(level[i], level[i+1]))
		}
		level = next
	}
	return level[0]
}

func hashLeaf(l Hash) Hash {
	var b [33]byte
	b[0] = 0
	copy(b[1:], l[:])
	return sha256.Sum256(b[:])
}

func hashNode(l, r Hash) Hash {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// MerkleProof returns the sibling path proving that leaf i is in the tree of leaves.
func MerkleProof(leaves []Hash, i int) []Hash {
	if i < 0 || i >= len(leaves) {
		return nil
	}
	level := make([]Hash, len(leaves))
	for j, l := range leaves {
		level[j] = hashLeaf(l)
	}
	var proof []Hash
	for len(level) > 1 {
		if sib := i ^ 1; sib < len(level) {
			proof = append(proof, level[sib])
		}
		next := make([]Hash, 0, (len(level)+1)/2)
		for j := 0; j < len(level); j += 2 {
			if j+1 == len(level) {
				next = append(next, level[j])
				continue
			}
			next = append(next, hashNode(level[j], level[j+1]))
		}
		level = next
		i /= 2
	}
	return proof
}

// VerifyMerkleProof checks that leaf is leaf i of n leaves under root.
func VerifyMerkleProof(root, leaf Hash, i, n int, proof []Hash) bool {
	if i < 0 || i >= n {
		return false
	}
	h := hashLeaf(leaf)
	for n > 1 {
		if i%2 == 1 {
			if len(proof) == 0 {
				return false
			}
			h = hashNode(proof[0], h)
			proof = proof[1:]
		} else if i+1 < n {
			if len(proof) == 0 {
				return false
			}
			h = hashNode(h, proof[0])
			proof = proof[1:]
		}
		i /= 2
		n = (n + 1) / 2
	}
	return len(proof) == 0 && h == root
}

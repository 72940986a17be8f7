package depot

import (
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/google/go-containerregistry/pkg/v1/layout"
	_ "github.com/google/go-containerregistry/pkg/v1/tarball"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/klauspost/compress/zstd"
)

func TestScratch(t *testing.T) {
	for _, s := range []string{"web", "web:1.2", "Web:1", "registry/x:tag", "localhost:5000/x", "127.0.0.1:5000/a/b:c", "x@sha256:" + "0123456789012345678901234567890123456789012345678901234567890123", "a b", "sha256:abc", "-x", "x:", "x:-a"} {
		tg, err := name.NewTag(s)
		if err != nil {
			fmt.Println(s, "ERR", err)
			continue
		}
		fmt.Printf("%s -> Name=%s String=%s RepoStr=%s Reg=%q tag=%s ctx=%s\n", s, tg.Name(), tg.String(), tg.RepositoryStr(), tg.RegistryStr(), tg.TagStr(), tg.Context().Name())
		r, err := name.ParseReference(s)
		fmt.Println("   parse:", r, err)
	}
}

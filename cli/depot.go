package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"qnet.dev/qnet/api"
	"qnet.dev/qnet/depot"
)

func (a *app) depotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "depot",
		Short: "Manage the depot store: images and modules that services run",
		Long: `Depots are immutable, content-addressed workloads: OCI images and WebAssembly
modules, kept in every node's depot store and fetched from peers by the nodes that run
them. These commands work on the store of the node your context talks to; a manifest
names a depot by name or digest, and apply resolves it to a digest.`,
		Example: `  qnet depot import web.tar --name web:1.2
  qnet depot pull registry.local:5000/web:1.2
  qnet depot build ./site --name site:1
  qnet depot ls`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	var name string
	imp := &cobra.Command{
		Use:   "import FILE [--name NAME]",
		Short: "Import an OCI image layout, a docker save tarball or a WASM module",
		Long: `Upload an image to the node's store: an OCI image layout (a directory or a tar of
one), a tarball written by docker save, or a WebAssembly module (.wasm). Every blob is
checked against its digest; a file that is none of these is refused.`,
		Example: `  qnet depot import web.tar --name web:1.2
  qnet depot import ./layout
  qnet depot import hello.wasm --name hello:1`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			img, err := cl.ImportImage(cmd.Context(), args[0], name)
			if err != nil {
				return fmt.Errorf("import %s: %w", args[0], err)
			}
			a.printImage(img, "imported")
			return nil
		},
	}
	imp.Flags().StringVar(&name, "name", "", "name the image in the store, e.g. web:1.2")
	var insecure bool
	var pullName string
	pull := &cobra.Command{
		Use:   "pull REF",
		Short: "Pull an image from an OCI registry into the node's store",
		Example: `  qnet depot pull docker.io/library/nginx:1.27
  qnet depot pull localhost:5000/web:1.2 --insecure`,
		Args: exactArgs("REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			img, err := cl.PullImage(cmd.Context(), api.PullRequest{Ref: args[0], Name: pullName, Insecure: insecure})
			if err != nil {
				return fmt.Errorf("pull %s: %w", args[0], err)
			}
			a.printImage(img, "pulled")
			return nil
		},
	}
	pull.Flags().BoolVar(&insecure, "insecure", false, "allow a registry over plain HTTP")
	pull.Flags().StringVar(&pullName, "name", "", "also name the image in the store")
	var entrypoint []string
	var buildName string
	build := &cobra.Command{
		Use:   "build DIR|BINARY --name NAME",
		Short: "Pack a directory or a static binary as a one-layer image",
		Long: `Pack a directory (as the image's root filesystem) or one static binary (as
/app/<name>, its entrypoint) into a one-layer OCI image, here, and upload it to the
node's store. The same input always gives the same digest.`,
		Example: `  qnet depot build ./bin/web --name web:1.2
  qnet depot build ./rootfs --name site:1 --entrypoint /bin/site`,
		Args: exactArgs("PATH"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			img, err := cl.BuildImage(cmd.Context(), args[0], buildName, depot.BuildOptions{Entrypoint: entrypoint})
			if err != nil {
				return fmt.Errorf("build %s: %w", args[0], err)
			}
			a.printImage(img, "built")
			return nil
		},
	}
	build.Flags().StringVar(&buildName, "name", "", "name of the image, e.g. web:1.2")
	build.Flags().StringSliceVar(&entrypoint, "entrypoint", nil, "entrypoint of a directory image, e.g. /bin/site")
	var output string
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the depots in the node's store",
		Example: "  qnet depot ls\n  qnet depot ls -o json",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			imgs, err := cl.Images(cmd.Context())
			if err != nil {
				return err
			}
			if output != formatTable {
				return writeDoc(a.stdout, output, imgs)
			}
			t := newTable(a.stdout)
			fmt.Fprintln(t, "DIGEST\tNAMES\tKIND\tPLATFORM\tSIZE\tADDED")
			now := time.Now()
			for _, im := range imgs {
				platform := im.OS + "/" + im.Arch
				if im.Kind == depot.KindWasm {
					platform = "any"
				}
				fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", im.Digest.Short(), strings.Join(im.Names, ","), im.Kind, platform, memory(im.Size), age(im.Added, now))
			}
			return t.Flush()
		},
	}
	outputFlag(ls, &output, formatTable, formatJSON, formatYAML)
	var inspectOut string
	inspect := &cobra.Command{
		Use:     "inspect REF",
		Short:   "Show a depot: its layers, configuration and names",
		Example: "  qnet depot inspect web:1.2\n  qnet depot inspect sha256:3f2a9c",
		Args:    exactArgs("REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			img, err := cl.Image(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeDoc(a.stdout, inspectOut, img)
		},
	}
	outputFlag(inspect, &inspectOut, formatYAML, formatJSON)
	rm := &cobra.Command{
		Use:     "rm REF",
		Aliases: []string{"remove"},
		Short:   "Remove a depot (or a name of one) from the node's store",
		Long: `Remove a name; given a digest, remove the image itself. An image that a service's
current revision runs is not removed. Blobs no image needs are collected later.`,
		Example: "  qnet depot rm web:1.2\n  qnet depot rm sha256:3f2a9c21d4e5",
		Args:    exactArgs("REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			img, err := cl.RemoveImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed %s (%s)\n", args[0], img.Digest.Short())
			return nil
		},
	}
	cmd.AddCommand(imp, pull, build, ls, inspect, rm)
	return cmd
}

func (a *app) printImage(img *api.ImageDetail, verb string) {
	names := strings.Join(img.Names, ", ")
	if names == "" {
		names = "(no name)"
	}
	fmt.Fprintf(a.stdout, "%s %s %s: %s, %s/%s, %s\n", verb, img.Kind, img.Digest, names, img.OS, img.Arch, memory(img.Size))
}

//go:build !unix

package cli

import "os"

// terminalWidth returns 80: the columns of a terminal are only asked on Unix.
func terminalWidth(*os.File) int { return 80 }

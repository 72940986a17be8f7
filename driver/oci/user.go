package oci

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// User is the identity a container's process runs as.
type User struct {
	UID, GID       uint32
	AdditionalGids []uint32
	// Home is the user's home directory from the image's /etc/passwd ("/" when the
	// user has no entry there).
	Home string
}

// maxIDFile bounds how much of an image's /etc/passwd or /etc/group is read.
const maxIDFile = 1 << 20

// ResolveUser turns an image's user string into numeric IDs, as Docker does:
//
//	""            root (0:0)
//	"1000"        uid 1000; gid from its /etc/passwd entry, else 0
//	"app"         the passwd entry named app (an error if there is none)
//	"app:staff"   user app, group staff from /etc/group
//	"1000:50"     both numeric; no file needed
//
// When the user has a passwd entry, the groups that list it as a member in
// /etc/group are added as supplementary groups. passwd and group are the image's
// files (nil when absent); lines that are not well formed are skipped, as libc does.
func ResolveUser(spec string, passwd, group []byte) (User, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if hasGroup && groupPart == "" {
		return User{}, fmt.Errorf("user %q: empty group after ':'", spec)
	}
	if userPart == "" {
		if spec != "" {
			return User{}, fmt.Errorf("user %q: empty user before ':'", spec)
		}
		userPart = "0"
	}
	users := parsePasswd(passwd)
	u := User{Home: "/"}
	var entry *passwdEntry
	if id, ok := parseID(userPart); ok {
		u.UID = id
		for i := range users {
			if users[i].uid == id {
				entry = &users[i]
				break
			}
		}
	} else {
		for i := range users {
			if users[i].name == userPart {
				entry = &users[i]
				break
			}
		}
		if entry == nil {
			return User{}, fmt.Errorf("user %q: no user %q in the image's /etc/passwd", spec, userPart)
		}
		u.UID = entry.uid
	}
	if entry != nil {
		u.GID, u.Home = entry.gid, entry.home
		if u.Home == "" {
			u.Home = "/"
		}
	}
	groups := parseGroup(group)
	if hasGroup {
		if id, ok := parseID(groupPart); ok {
			u.GID = id
		} else {
			found := false
			for _, g := range groups {
				if g.name == groupPart {
					u.GID, found = g.gid, true
					break
				}
			}
			if !found {
				return User{}, fmt.Errorf("user %q: no group %q in the image's /etc/group", spec, groupPart)
			}
		}
	}
	if entry != nil {
		for _, g := range groups {
			if g.gid != u.GID && slices.Contains(g.members, entry.name) && !slices.Contains(u.AdditionalGids, g.gid) {
				u.AdditionalGids = append(u.AdditionalGids, g.gid)
			}
		}
	}
	return u, nil
}

// parseID reads a numeric user or group ID; IDs above 2^31-2 are not valid on Linux
// (4294967295 is "no ID").
func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > 1<<31-2 {
		return 0, false
	}
	return uint32(n), true
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	forLines(data, func(fields []string) {
		if len(fields) < 4 || fields[0] == "" {
			return
		}
		uid, ok1 := parseID(fields[2])
		gid, ok2 := parseID(fields[3])
		if !ok1 || !ok2 {
			return
		}
		e := passwdEntry{name: fields[0], uid: uid, gid: gid}
		if len(fields) > 5 {
			e.home = fields[5]
		}
		out = append(out, e)
	})
	return out
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	forLines(data, func(fields []string) {
		if len(fields) < 3 || fields[0] == "" {
			return
		}
		gid, ok := parseID(fields[2])
		if !ok {
			return
		}
		g := groupEntry{name: fields[0], gid: gid}
		if len(fields) > 3 && fields[3] != "" {
			g.members = strings.Split(fields[3], ",")
		}
		out = append(out, g)
	})
	return out
}

// forLines calls f with the colon-separated fields of each line that is not blank or
// a comment.
func forLines(data []byte, f func([]string)) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxIDFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f(strings.Split(line, ":"))
	}
}

// readImageFile reads a small file of a root filesystem (such as /etc/passwd) without
// leaving it: links are resolved inside the root, and one that leads out is an error.
// A file that does not exist gives nil and no error.
func readImageFile(rootfs, name string) ([]byte, error) {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the image's /%s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxIDFile))
	if err != nil {
		return nil, fmt.Errorf("read the image's /%s: %w", name, err)
	}
	return data, nil
}

package dns

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"qnet.dev/qnet/netsvc"
)

// Zone is the top-level domain under which every network's zone lives.
const Zone = "qnet."

// SRV priorities: a client that honours them tries the replicas of its own node first,
// since only those are reachable at the address the SRV target resolves to.
const (
	priorityLocal  = 0
	priorityRemote = 1
)

// zone answers the queries for one network's names from a Catalog. It does no I/O
// beyond reading the Catalog, so it can be tested and fuzzed on its own.
type zone struct {
	catalog netsvc.Catalog
	ttl     uint32 // seconds
}

// origin returns the zone's apex, NETWORK.qnet., in lower case, or "" when the
// network's name is no DNS label (then no name of the zone exists).
func (z zone) origin() string {
	network := z.catalog.Network()
	if !validLabel(network) {
		return ""
	}
	return strings.ToLower(network + "." + Zone)
}

// inQnet reports whether name is Zone or below it.
func inQnet(name string) bool {
	return dns.IsSubDomain(Zone, name)
}

// answer fills reply (already set up as the reply to a query for q) with the answer of
// the zone. q's name must be under Zone.
func (z zone) answer(reply *dns.Msg, q dns.Question) {
	origin := z.origin()
	if origin == "" || !dns.IsSubDomain(origin, q.Name) {
		// Another network's name, or qnet. itself: this node knows nothing of it and
		// is not its authority, and such names never leave the node for an upstream.
		reply.Rcode = dns.RcodeNameError
		return
	}
	reply.Authoritative = true
	labels := dns.SplitDomainName(q.Name)
	labels = labels[:len(labels)-dns.CountLabel(origin)]
	for i := range labels {
		labels[i] = strings.ToLower(labels[i])
	}
	found := false
	switch len(labels) {
	case 0:
		found = true
		if q.Qtype == dns.TypeSOA || q.Qtype == dns.TypeANY {
			reply.Answer = append(reply.Answer, z.soa(origin))
		}
	case 1:
		found = z.service(reply, q, origin, labels[0])
	case 2:
		if strings.HasPrefix(labels[0], "_") {
			found = z.protocolNode(q, labels[0], labels[1])
		} else {
			found = z.depot(reply, q, labels[0], labels[1])
		}
	case 3:
		found = z.portSRV(reply, q, origin, labels[0], labels[1], labels[2])
	}
	if !found {
		reply.Rcode = dns.RcodeNameError
	}
	if len(reply.Answer) == 0 {
		// NXDOMAIN or NODATA: the SOA tells resolvers how long to cache the absence.
		reply.Ns = append(reply.Ns, z.soa(origin))
	}
}

// soa is the zone's SOA record. The negative-caching TTL is the zone's TTL, so a
// service that becomes ready is not hidden by cached NXDOMAINs for longer than its
// records would be cached.
func (z zone) soa(origin string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: z.ttl},
		Ns:      origin,
		Mbox:    "hostmaster." + origin,
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  z.ttl,
	}
}

// ports returns the ports of the service named name (matched case-insensitively).
func (z zone) ports(name string) []netsvc.ServicePort {
	var ports []netsvc.ServicePort
	for _, p := range z.catalog.Ports() {
		if strings.EqualFold(p.Service, name) {
			ports = append(ports, p)
		}
	}
	return ports
}

// ready returns the endpoints of a service's port ("" for all ports) that are ready.
func (z zone) ready(service, port string) []netsvc.Endpoint {
	eps := z.catalog.Endpoints(service, port)
	return slices.DeleteFunc(slices.Clone(eps), func(e netsvc.Endpoint) bool { return !e.Ready })
}

// service answers SERVICE.NETWORK.qnet.: the VIP for A/AAAA/ANY, every ready
// endpoint for SRV. It reports whether the service exists.
func (z zone) service(reply *dns.Msg, q dns.Question, origin, name string) bool {
	ports := z.ports(name)
	if len(ports) == 0 {
		return false
	}
	service := ports[0].Service
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		if len(z.ready(service, "")) == 0 {
			return true // NODATA: the name exists, but nothing would answer at the VIP
		}
		for _, p := range ports {
			if p.VIP.IsValid() {
				if rr := z.address(q.Name, q.Qtype, p.VIP); rr != nil {
					reply.Answer = append(reply.Answer, rr)
				}
				break // the VIP is the same for every port
			}
		}
	case dns.TypeSRV:
		z.srv(reply, q.Name, origin, service, z.ready(service, ""))
	}
	return true
}

// portSRV answers _PORT._PROTO.SERVICE.NETWORK.qnet.: the ready endpoints of that port
// for SRV. It reports whether the port exists with that protocol.
func (z zone) portSRV(reply *dns.Msg, q dns.Question, origin, port, proto, name string) bool {
	if !strings.HasPrefix(port, "_") || !strings.HasPrefix(proto, "_") {
		return false
	}
	for _, p := range z.ports(name) {
		if strings.EqualFold(p.Port, port[1:]) && protocol(p) == proto[1:] {
			if q.Qtype == dns.TypeSRV || q.Qtype == dns.TypeANY {
				z.srv(reply, q.Name, origin, p.Service, z.ready(p.Service, p.Port))
			}
			return true
		}
	}
	return false
}

// protocolNode answers _PROTO.SERVICE.NETWORK.qnet., a name with no records of its
// own that exists when the service has a port of that protocol (RFC 8020: an empty
// non-terminal is NODATA, not NXDOMAIN).
func (z zone) protocolNode(q dns.Question, proto, name string) bool {
	for _, p := range z.ports(name) {
		if "_"+protocol(p) == proto {
			return true
		}
	}
	return false
}

// depot answers DEPOT.SERVICE.NETWORK.qnet.: the host address of a ready replica. It
// reports whether the replica exists and is ready.
func (z zone) depot(reply *dns.Msg, q dns.Question, depot, name string) bool {
	ports := z.ports(name)
	if len(ports) == 0 {
		return false
	}
	var addrs []netip.Addr
	found := false
	for _, e := range z.ready(ports[0].Service, "") {
		if !strings.EqualFold(e.Depot, depot) {
			continue
		}
		found = true
		if a := e.Addr.Addr().Unmap(); a.IsValid() && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if !found {
		return false
	}
	if q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY {
		for _, a := range addrs {
			if rr := z.address(q.Name, q.Qtype, a); rr != nil {
				reply.Answer = append(reply.Answer, rr)
			}
		}
	}
	return true
}

// srv appends one SRV record per endpoint to the answer, owned by name, and the
// addresses of their targets to the additional section. Local endpoints come first.
func (z zone) srv(reply *dns.Msg, name, origin, service string, eps []netsvc.Endpoint) {
	slices.SortFunc(eps, func(a, b netsvc.Endpoint) int {
		return cmp.Or(cmp.Compare(priority(a), priority(b)),
			strings.Compare(a.Depot, b.Depot), cmp.Compare(a.Addr.Port(), b.Addr.Port()))
	})
	serviceLabel := strings.ToLower(service)
	seen := map[string]bool{}
	var extra []dns.RR
	for _, e := range eps {
		// A depot ID that is no DNS label (longer than 63 bytes, say) cannot be a
		// target; its replica stays reachable through the VIP.
		if !validLabel(e.Depot) || !e.Addr.IsValid() {
			continue
		}
		target := strings.ToLower(e.Depot) + "." + serviceLabel + "." + origin
		reply.Answer = append(reply.Answer, &dns.SRV{
			Hdr:      dns.RR_Header{Name: name, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: z.ttl},
			Priority: priority(e),
			Weight:   1, // equal weights: clients spread over the replicas of one priority
			Port:     e.Addr.Port(),
			Target:   target,
		})
		a := e.Addr.Addr().Unmap()
		if key := target + " " + a.String(); !seen[key] {
			seen[key] = true
			extra = append(extra, z.address(target, dns.TypeANY, a))
		}
	}
	reply.Extra = append(reply.Extra, extra...)
}

// address returns the A (or AAAA) record of a for name, or nil when a is of the other
// family than qtype asks for. TypeANY takes either.
func (z zone) address(name string, qtype uint16, a netip.Addr) dns.RR {
	a = a.Unmap()
	if a.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY) {
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: z.ttl},
			A: a.AsSlice()}
	}
	if a.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY) {
		return &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: z.ttl},
			AAAA: a.AsSlice()}
	}
	return nil
}

// protocol returns a port's transport protocol in lower case; tcp when unset.
func protocol(p netsvc.ServicePort) string {
	if p.Protocol == "" {
		return "tcp"
	}
	return strings.ToLower(p.Protocol)
}

// priority is an endpoint's SRV priority: lower is preferred.
func priority(e netsvc.Endpoint) uint16 {
	if e.Local {
		return priorityLocal
	}
	return priorityRemote
}

// validLabel reports whether s can be one label of a name: 1 to 63 bytes, no dots, and
// nothing a presentation-format name would have to escape.
func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

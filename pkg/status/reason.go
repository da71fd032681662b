package status

import "strings"

// Reason classes of VRRP transitions: the label values of
// hapod_vrrp_transitions_total. The speaker's reasons are sentences that
// name peer addresses; a label must not (one series per peer address and
// priority would grow without bound), so they are folded into these.
const (
	ReasonStartup        = "startup"
	ReasonShutdown       = "shutdown"
	ReasonLinkDown       = "link_down"
	ReasonLinkUp         = "link_up"
	ReasonMasterDown     = "master_down"
	ReasonPriorityZero   = "priority_zero"
	ReasonPreempt        = "preempt"
	ReasonHigherPriority = "higher_priority"
	ReasonHigherAddress  = "higher_address"
	ReasonOther          = "other"
)

// reasonPrefixes maps the start of the speaker's reason sentences (see
// pkg/vrrp's machine.go) to classes.
var reasonPrefixes = []struct{ prefix, class string }{
	{"startup", ReasonStartup},
	{"shutdown", ReasonShutdown},
	{"link down", ReasonLinkDown},
	{"link up", ReasonLinkUp},
	{"master down timer expired", ReasonMasterDown},
	{"priority 0 advert", ReasonPriorityZero},
	{"preempting", ReasonPreempt},
	{"higher priority advert", ReasonHigherPriority},
	{"equal priority advert from higher address", ReasonHigherAddress},
}

// ReasonClass folds a VRRP transition reason into one of the Reason*
// classes; an unknown reason is ReasonOther.
func ReasonClass(reason string) string {
	for _, p := range reasonPrefixes {
		if strings.HasPrefix(reason, p.prefix) {
			return p.class
		}
	}
	return ReasonOther
}

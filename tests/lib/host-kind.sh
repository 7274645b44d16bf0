# shellcheck shell=bash
# Which kind of host are we on? Source this file, then:
#   ember_host_kind          prints "direct" or "vmhost"
#   ember_on_linux_host CMD  runs CMD where /dev/kvm can boot a standard Linux
#                            guest: here ("direct") or in the emulated KVM host
#                            (tests/vmhost/run, "vmhost"), returning its status.
# direct: /dev/kvm is hardware KVM (or we already are inside the emulated host).
# vmhost: /dev/kvm is missing or is PVM (kvm_pvm), which runs only PVM guests.
# EMBER_TEST_HOST=direct|vmhost overrides the detection.

ember_host_kind() {
    case "${EMBER_TEST_HOST:-}" in
    direct | vmhost)
        echo "$EMBER_TEST_HOST"
        return 0
        ;;
    "") ;;
    *)
        echo "ember_host_kind: EMBER_TEST_HOST must be 'direct' or 'vmhost', not '$EMBER_TEST_HOST'" >&2
        return 2
        ;;
    esac
    if [[ ! -c /dev/kvm ]]; then
        echo vmhost
    # PVM is built in on some hosts (no /proc/modules), a module on others.
    elif [[ -d /sys/module/kvm_pvm ]] || grep -qs '^kvm_pvm ' /proc/modules; then
        echo vmhost
    else
        echo direct
    fi
}

ember_on_linux_host() {
    local kind
    kind=$(ember_host_kind) || return
    if [[ "$kind" == direct ]]; then
        "$@"
    else
        "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tests/vmhost/run" -- "$@"
    fi
}

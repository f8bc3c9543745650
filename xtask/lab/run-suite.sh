#!/bin/bash
# Runs inside the lab's dom0 as /job/run-suite.sh (written by `cargo xtask`, started by
# lab-init). Creates the guests listed in /job/suite.list one after the other and records,
# for each, in /job/out/<name>/:
#   console.log      the guest's console (xenconsoled's log)
#   console.timed    the same lines, each prefixed with ms since `xl create` started
#   result           key=value: reason, domid, create_ms, first_console_ms, script_status
#   xl-create.log, xl-list.txt, xl-dmesg.log, dom0-script.log
# and streams progress to the host as "@@LAB ..." console lines.
#
# /job/g/<name>/ holds the guest's kernel, guest.cfg, optional ramdisk, extra files,
# xl-overrides (extra `key=value` settings, one a line), optional dom0.sh and params (TIMEOUT=secs, SCRIPT_MODE=before|background, SCRIPT_GRACE=secs).
set -u
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
lab() { echo "@@LAB $*"; }

xl dmesg -c > /job/out/xen-boot-dmesg.log 2>&1
# The first `xl create` of a boot pays for reading the toolstack and its libraries from
# the (cold) root disk; warm the page cache so the first guest's times compare with the
# others'.
cat /usr/lib/xen-4.17/bin/* /usr/lib/x86_64-linux-gnu/libxen* /usr/lib/x86_64-linux-gnu/libxl* \
    /usr/lib/xen-4.17/lib/x86_64-linux-gnu/* /job/g/*/kernel /job/g/*/ramdisk > /dev/null 2>&1

# Prints the host-facing copy of a file as it grows: "@@LAB <tag> <name> <line>".
# With a timed file, also appends "<ms since start_ms> <line>" there (start_ms 0: absolute). The file must start
# with the line "@@LAB-START": when the follower reads it, it creates <timed>.ready, so the
# caller knows the follower is reading before it starts the guest (then the first line's
# time stamp does not include the follower's own start-up, seconds under a loaded TCG).
follow() { # tag name file start_ms [timed_file]
    local tag=$1 name=$2 file=$3 start=$4 timed=${5:-} line t
    tail -n +1 -F "$file" 2>/dev/null | while IFS= read -r line; do
        line=${line%$'\r'}
        if [ "$line" = "@@LAB-START" ]; then
            [ -n "$timed" ] && : > "$timed.ready"
            continue
        fi
        if [ -n "$timed" ]; then t=${EPOCHREALTIME/./}; echo "$((t / 1000 - start)) $line" >> "$timed"; fi
        echo "@@LAB $tag $name $line"
    done
}

# Waits for a child of this shell for at most `secs`, then kills its process group (it was
# started with setsid). Sets WAIT_STATUS to its exit status, or "killed". (Polling with
# `kill -0` cannot tell: an exited child stays a zombie until waited for.)
WAIT_STATUS=""
wait_or_kill() { # pid secs
    local pid=$1 secs=$2 killer status mark=/tmp/killed.$1
    rm -f "$mark"
    ( sleep "$secs"; : > "$mark"; kill -TERM -- "-$pid"; sleep 2; kill -KILL -- "-$pid" ) 2>/dev/null &
    killer=$!
    wait "$pid"
    status=$?
    kill "$killer" 2>/dev/null
    wait "$killer" 2>/dev/null
    if [ -e "$mark" ]; then WAIT_STATUS=killed; else WAIT_STATUS=$status; fi
    rm -f "$mark"
}

# Stops a process group started with setsid, now.
stop_group() { # pid
    kill -TERM -- "-$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# Shutdown state of a domain from `xl list -v`: prints poweroff|reboot|suspend|crash|
# watchdog|soft-reset when it has shut down, "gone" when xl lists no such domain, else nothing.
shutdown_state() { # name row_file err_file
    local row state code
    row=$(xl list -v "$1" 2>>"$3" | awk -v n="$1" '$1 == n')
    echo "$row" > "$2"
    [ -n "$row" ] || { echo gone; return; }
    state=$(echo "$row" | awk '{print $5}')
    code=$(echo "$row" | awk '{print $8}')
    case "$state" in
        *s*|*c*) ;;
        *) return ;;
    esac
    case "$code" in
        0) echo poweroff ;; 1) echo reboot ;; 2) echo suspend ;; 3) echo crash ;;
        4) echo watchdog ;; 5) echo soft-reset ;; *) echo crash ;;
    esac
}

run_guest() { # name
    local name=$1 dir=/job/g/$1 out=/job/out/$1
    local TIMEOUT=60 SCRIPT_MODE=none SCRIPT_GRACE=10
    local reason="" domid="" create_ms="" script_status="none" t0 t_created deadline
    local console_pid="" script_pid="" script_follow_pid=""
    mkdir -p "$out"
    . "$dir/params"
    local overrides=()
    mapfile -t overrides < "$dir/xl-overrides"
    overrides+=(
        "name=\"$name\"" "kernel=\"$dir/kernel\""
        "on_poweroff=\"preserve\"" "on_reboot=\"preserve\"" "on_crash=\"preserve\""
        "on_watchdog=\"preserve\"" "on_soft_reset=\"preserve\""
    )
    [ -f "$dir/ramdisk" ] && overrides+=("ramdisk=\"$dir/ramdisk\"")
    local console=/var/log/xen/console/guest-$name.log
    lab "guest-start $name timeout=$TIMEOUT"
    : > "$out/dom0-script.log"

    t0=$(now_ms)
    if [ "$SCRIPT_MODE" = before ]; then
        (cd "$dir" && GUEST_NAME=$name timeout -k 5 "$TIMEOUT" ./dom0.sh) > "$out/dom0-script.log" 2>&1
        script_status=$?
        sed "s/^/@@LAB script $name /" "$out/dom0-script.log"
        [ "$script_status" = 0 ] || reason=script-failed
    fi

    if [ -z "$reason" ]; then
        # xenconsoled appends to the log: start following it before the domain exists.
        echo "@@LAB-START" > "$console"
        setsid bash -c "$(declare -f follow); follow con '$name' '$console' 0 '$out/console.abs'" &
        console_pid=$!
        local waited=0
        while [ ! -e "$out/console.abs.ready" ] && [ $waited -lt 100 ]; do sleep 0.05; waited=$((waited + 1)); done
        t0=$(now_ms)
        if (cd "$dir" && xl create -p guest.cfg "${overrides[@]}") > "$out/xl-create.log" 2>&1; then
            t_created=$(now_ms)
            create_ms=$((t_created - t0))
            # Only a background script needs the domid before the guest runs; looking it up
            # costs an xl call that would otherwise count in the first-console-line time.
            if [ "$SCRIPT_MODE" = background ]; then
                domid=$(xl domid "$name" 2>/dev/null)
                echo "@@LAB-START" > "$out/dom0-script.log"
                (cd "$dir" && GUEST_NAME=$name DOMID=$domid exec setsid ./dom0.sh) >> "$out/dom0-script.log" 2>&1 &
                script_pid=$!
                setsid bash -c "$(declare -f follow); follow script '$name' '$out/dom0-script.log' 0" &
                script_follow_pid=$!
            fi
            xl unpause "$name"
            lab "trace $name unpaused"
            [ -n "$domid" ] || domid=$(xl domid "$name" 2>/dev/null)
            lab "guest-running $name domid=$domid create_ms=$create_ms"
            deadline=$(( $(now_ms) + TIMEOUT * 1000 ))
            # With on_*=preserve a domain stays until we destroy it, so a missing row is a
            # transient xl failure unless it persists (then: destroyed by something else).
            local misses=0 state
            while [ "$(now_ms)" -lt "$deadline" ]; do
                state=$(shutdown_state "$name" "$out/xl-list.txt" "$out/xl-list.err")
                if [ "$state" = gone ]; then
                    misses=$((misses + 1))
                    [ $misses -ge 10 ] && { reason=vanished; break; }
                elif [ -n "$state" ]; then
                    reason=$state
                    break
                else
                    misses=0
                fi
                sleep 0.2
            done
            [ -n "$reason" ] || reason=timeout
            lab "trace $name shutdown seen: $reason"
            sleep 0.3 # xenconsoled may not have drained the ring yet
            xl destroy "$name" > /dev/null 2>&1
            lab "trace $name destroyed"
        else
            reason=create-failed
            sed "s/^/@@LAB script $name xl create: /" "$out/xl-create.log"
        fi
    fi

    if [ -n "$script_pid" ]; then
        wait_or_kill "$script_pid" "$SCRIPT_GRACE"
        script_status=$WAIT_STATUS
    fi
    sleep 0.2 # the followers' last lines
    [ -n "$console_pid" ] && stop_group "$console_pid"
    [ -n "$script_follow_pid" ] && stop_group "$script_follow_pid"
    grep -v '^@@LAB-START$' "$console" > "$out/console.log" 2>/dev/null
    sed -i '/^@@LAB-START$/d' "$out/dom0-script.log"
    cp "/var/log/xen/xl-$name.log" "$out/xl.log" 2>/dev/null
    lab "trace $name followers stopped"
    xl dmesg -c > "$out/xl-dmesg.log" 2>&1
    # Console time stamps relative to the start of xl create.
    [ -f "$out/console.abs" ] && awk -v t0="$t0" '{ i = index($0, " "); print ($1 - t0) substr($0, i) }' \
        "$out/console.abs" > "$out/console.timed"
    local first_ms
    first_ms=$(head -n 1 "$out/console.timed" 2>/dev/null | cut -d' ' -f1)
    {
        echo "reason=$reason"
        echo "domid=$domid"
        echo "create_ms=$create_ms"
        echo "first_console_ms=$first_ms"
        echo "script_status=$script_status"
    } > "$out/result"
    lab "guest-end $name reason=$reason create_ms=$create_ms first_console_ms=$first_ms script_status=$script_status"
}

# fd 3: nothing a guest step runs may eat the list from stdin.
while IFS= read -r guest <&3; do
    [ -n "$guest" ] && run_guest "$guest" < /dev/null
done 3< /job/suite.list
sync

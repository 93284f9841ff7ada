mkdir -p ~/.config/signing-proxy ~/Library/LaunchAgents
signing-proxy init ~/.config/signing-proxy/signing-proxy.yaml        # then set the key in it
sed "s/YOU/$(whoami)/g" examples/local.signing-proxy.plist > ~/Library/LaunchAgents/local.signing-proxy.plist
launchctl bootstrap "gui/$(id -u)" ~/Library/LaunchAgents/local.signing-proxy.plist
launchctl kill HUP "gui/$(id -u)/local.signing-proxy"                # reload the file and the key
launchctl bootout "gui/$(id -u)/local.signing-proxy"                 # stop it

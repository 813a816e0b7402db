# Comment out the plugin sections ([mqtt], [modbus], [modbus.*]) of notegw.conf,
# with a note where the first one starts; everything else passes unchanged.
/^\[/ {
	plugin = ($0 ~ /^\[(mqtt|modbus)[].]/)
	if (plugin && !noted) {
		print "# Plugin sections: each plugin is a package of its own (notegw-mqtt,"
		print "# notegw-modbus), and its section is an error while it is not installed."
		print "# Uncomment and edit after installing the plugin; until then an installed"
		print "# plugin runs on its defaults. See notegw.conf(5)."
		print ""
		noted = 1
	}
}
plugin && NF && !/^[#;]/ { $0 = "# " $0 }
{ print }

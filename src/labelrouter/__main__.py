from labelrouter.cli.app import main

main()

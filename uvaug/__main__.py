from uvaug.cli.app import main

main()

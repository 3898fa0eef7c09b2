from damfleet.cli import main

main()

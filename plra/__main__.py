from plra.cli import main

main()

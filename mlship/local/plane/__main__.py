from mlship.local.plane.server import main

main()

from hermes_atropos import main

main()

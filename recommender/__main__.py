from recommender.cli import main

main(prog_name="recommender")
